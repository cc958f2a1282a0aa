"""Start-up and clean-up: kopf settings, the shared context, the HTTP server, the mirror."""

import logging
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import kopf
from aiohttp import web

from gamevm.handlers.context import AppContext
from gamevm.handlers.diffbase import NoDiffBaseStorage
from gamevm.handlers.http import start_servers
from gamevm.handlers.kube import (
    Kube,
    KubeAccessSecrets,
    KubeError,
    KubeSecretReader,
    load_api_client,
)
from gamevm.logging_setup import quiet_handler_success
from gamevm.models.enums import CloudProvider
from gamevm.models.names import FINALIZER, GROUP, OPERATOR_NAME
from gamevm.providers.base import Provider
from gamevm.providers.budget import BudgetedProvider, BudgetSettings
from gamevm.providers.metered import MeteredProvider
from gamevm.providers.registry import build_providers, close_providers
from gamevm.providers.wolf import HttpWolfProbe
from gamevm.services.access import SECRET_KEY_SINGLE, keyring_from_secret
from gamevm.services.authz import Authorizer
from gamevm.services.configuration import WolfHostConfig
from gamevm.services.placement import ProviderSelector
from gamevm.services.reconcile import Reconciler, Timings
from gamevm.services.sharding import parse_shard
from gamevm.settings import Settings

if TYPE_CHECKING:
    from gamevm.mirror.repository import Mirror, ResyncSnapshot, ResyncSource
    from gamevm.models.documents import VMDocument

log = logging.getLogger(__name__)

EVENT_HANDLER_IDS = ("gamevm_event", "gamevm_paused", "emulatorconfig_event")
"""kopf ids of the on-event handlers (their function names), called on every watch event."""

MASTER_KEY = SECRET_KEY_SINGLE
"""Key, in the credentials Secret, of the master key per-VM access material derives from."""


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf and build the shared context."""
    cfg = Settings()
    shard = parse_shard(cfg.shard)
    # Our own names for everything kopf stores on objects, so `kubectl describe` reads well.
    # Each shard has its own finalizer: kopf removes its finalizer from objects none of its
    # handlers match, and a shared name would let one shard release the other's VMs.
    settings.persistence.finalizer = (
        FINALIZER if shard is None else f"{FINALIZER}-shard-{shard.index}"
    )
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    # No create/update handlers: kopf needs no stored diff base (saves a patch per object).
    settings.persistence.diffbase_storage = NoDiffBaseStorage()
    # Only explicit kopf.event() calls become Events; log lines stay logs.
    settings.posting.loggers = False
    # Not one log line per watch event: the on-event handlers' success is no news.
    quiet_handler_success(EVENT_HANDLER_IDS)
    # Events say who wrote them: `kubectl describe` shows "From gamevm-operator", not kopf.
    settings.posting.reporting_component = OPERATOR_NAME
    settings.posting.reporting_instance = cfg.pod_name or socket.gethostname()
    settings.posting.event_name_prefix = f"{OPERATOR_NAME}-"
    # Watches are re-established before proxies and load balancers cut idle streams.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    # The initial LIST in pages: not every object's JSON and its decoding at once (at
    # 10,000 GameVMs, ~50 MB of text; bench/README.md, memory).
    settings.watching.chunk_size = cfg.watch_list_chunk_size or None
    # The daemon drives provisioning; a failed delete is retried with its own backoff.
    settings.execution.max_workers = 8

    kube = Kube(load_api_client(cfg.kube_client_threads), threads=cfg.kube_client_threads)
    credentials = await _read_credentials(kube, cfg)
    try:
        keys = keyring_from_secret(credentials)
    except ValueError as exc:
        log.error(
            "Secret %s: %s; provisioning is blocked (docs/operations.md)",
            cfg.credentials_secret,
            exc,
        )
        keys = None
    # Metered inside the budget: the metrics count the calls that reach the provider.
    budgets = {
        name: BudgetedProvider(MeteredProvider(adapter), _budget_settings(cfg, name))
        for name, adapter in build_providers(cfg, credentials).items()
    }
    providers: dict[CloudProvider, Provider] = dict(budgets)
    wolf = HttpWolfProbe(cfg.wolf_probe_timeout, allow_loopback=cfg.wolf_probe_allow_loopback)
    reconciler = Reconciler(
        providers=providers,
        selector=ProviderSelector(providers),
        secrets=KubeAccessSecrets(kube),
        wolf=wolf,
        keys=keys,
        credentials_secret=cfg.credentials_secret,
        timings=Timings(
            observe=cfg.observe_interval,
            activity=cfg.activity_interval,
            activity_max=cfg.activity_max_interval,
            retry_base=cfg.retry_delay,
        ),
        wolf_host=WolfHostConfig(public_url=cfg.public_url, wolf_image=cfg.wolf_image),
        secret_reader=KubeSecretReader(kube, cfg.namespace),
    )
    if cfg.public_url is None:
        log.warning(
            "GAMEVM_PUBLIC_URL is unset: TensorDock VMs cannot report their configuration "
            "and stay configuring (docs/wolf-host.md)"
        )
    mirror = None
    if cfg.mongodb_uri is not None:
        # Imported only when configured: without a URI the operator needs no Mongo client.
        from gamevm.mirror.repository import Mirror

        mirror = Mirror.from_settings(cfg)
        if mirror is not None:
            await mirror.start()
    app = AppContext(
        settings=cfg,
        kube=kube,
        providers=providers,
        budgets=budgets,
        reconciler=reconciler,
        wolf=wolf,
        mirror=mirror,
        keys=keys,
        shard=shard,
    )
    memo.app = app
    authorizer = Authorizer(kube, ttl=cfg.api_auth_cache_seconds)
    try:
        memo.http = await start_servers(app, authorizer)
    except OSError as exc:
        # A taken port will not free itself: exit with the reason instead of retrying.
        raise kopf.PermanentError(
            f"cannot serve HTTP on {cfg.http_host}:{cfg.http_port} and "
            f"{cfg.api_host}:{cfg.api_port}: {exc.strerror or exc}"
        ) from exc
    if mirror is not None:
        mirror.set_resync_source(_resync_source(app, mirror))
    app.ready = True
    log.info(
        "gamevm-operator started: %d providers, mirror %s, shard %s, HTTP on %s:%d, API on %s:%d",
        len(providers),
        "on" if mirror else "off",
        f"{shard.index}/{shard.count}" if shard else "all",
        cfg.http_host,
        cfg.http_port,
        cfg.api_host,
        cfg.api_port,
    )


def _budget_settings(cfg: Settings, provider: CloudProvider) -> BudgetSettings:
    """The shared-call intervals; lists run faster while VMs change state where the
    provider's request limit leaves room (TensorDock at 100/min: every 3 s, or every 20 s
    while creates wait for the limit)."""
    limit = cfg.tensordock_requests_per_minute if provider is CloudProvider.TENSORDOCK else None
    return BudgetSettings.for_limit(
        limit or 600.0,
        list_interval=cfg.provider_list_interval,
        offers_interval=cfg.provider_offers_interval,
        create_concurrency=cfg.provider_create_concurrency,
    )


async def _read_credentials(kube: Kube, cfg: Settings) -> dict[str, str]:
    try:
        data = await kube.read_secret_data(cfg.namespace, cfg.credentials_secret)
    except KubeError as exc:
        log.error(
            "cannot read Secret %s/%s (%s): providers will report MissingCredentials",
            cfg.namespace,
            cfg.credentials_secret,
            exc,
        )
        return {}
    if data is None:
        log.error(
            "Secret %s/%s not found: providers will report MissingCredentials",
            cfg.namespace,
            cfg.credentials_secret,
        )
        return {}
    return data


def _resync_source(app: AppContext, mirror: "Mirror") -> "ResyncSource":
    """The API server's view for the mirror's periodic and after-reconnect resyncs:
    GameVMs in pages of GAMEVM_MIRROR_RESYNC_PAGE_SIZE (100: at 500, each resync still
    raised the limited bench's RSS by 12-20 MB; bench/README.md)."""
    from gamevm.mirror.repository import ResyncSnapshot

    async def vm_pages() -> AsyncIterator[list["VMDocument"]]:
        async for bodies in app.kube.gamevm_pages(app.settings.mirror_resync_page_size):
            yield mirror.vm_documents(bodies)

    async def snapshot() -> "ResyncSnapshot":
        configs, _ = await app.kube.list_emulatorconfigs()
        return ResyncSnapshot(vm_pages(), mirror.config_documents(configs))

    return snapshot


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close sessions and servers."""
    app: AppContext | None = memo.get("app")
    if app is None:
        return
    app.ready = False
    runners: list[web.AppRunner] = memo.get("http") or []
    for runner in runners:
        await runner.cleanup()
    await close_providers(app.providers)
    await app.wolf.aclose()
    if app.mirror is not None:
        await app.mirror.aclose()
    await app.kube.aclose()
