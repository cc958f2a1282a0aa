"""The operator's two HTTP servers.

- Operations port (`GAMEVM_HTTP_PORT`): `/healthz` and `/metrics`, for the kubelet and
  Prometheus inside the cluster.
- API port (`GAMEVM_API_PORT`): the VMs' heartbeat (`POST /v1/gamevms/{ns}/{name}/activity`)
  and configuration report (`.../configuration`), both with the VM's own bearer token, and
  the read API (`/v1/vms...`, a Kubernetes bearer token,
  authorized per GameVM with SubjectAccessReview: a caller sees what it may `get`).

Split so that the NetworkPolicy can let VMs (or their ingress) reach the API port only,
and nothing but the monitoring stack reach the metrics.
"""

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gamevm import metrics
from gamevm.handlers.context import AppContext, VMRuntime
from gamevm.handlers.kube import KubeError
from gamevm.models.gamevm import ConfigurationStatus, GameVMStatus
from gamevm.services.access import verify_heartbeat_token
from gamevm.services.authz import Authorizer, Caller
from gamevm.services.configuration import (
    MAX_REPORT_MESSAGE,
    REPORT_PATH,
    ConfigurationReport,
    already_stored,
)
from gamevm.services.ratelimit import SourceRateLimiter
from gamevm.services.vmaddress import report_address, trusted_networks
from gamevm.settings import Settings

log = logging.getLogger(__name__)

APP_KEY = web.AppKey("gamevm", AppContext)
AUTHORIZER_KEY = web.AppKey("gamevm_authorizer", Authorizer)
LIMITER_KEY = web.AppKey("gamevm_heartbeat_limiter", SourceRateLimiter)
CALLER_KEY = web.RequestKey("gamevm_caller", Caller)

READ_API_PREFIX = "/v1/vms"
_UNAUTHORIZED = {"error": "unauthorized", "message": "missing or invalid bearer token"}
_DUMMY_KEY = b"\0" * 32
_DUMMY_UID = "00000000-0000-0000-0000-000000000000"


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _unauthorized() -> web.Response:
    return web.json_response(_UNAUTHORIZED, status=401, headers={"WWW-Authenticate": "Bearer"})


# -- operations port ----------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 once start-up finished."""
    app = request.app[APP_KEY]
    if not app.ready:
        return web.json_response({"status": "starting"}, status=503)
    return web.json_response({"status": "ok"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    mirror = request.app[APP_KEY].mirror
    if mirror is not None:
        stats = mirror.stats
        since = time.monotonic() - stats.lag_seconds if stats.pending else None
        metrics.set_mirror_backlog(stats.pending, since)
    body, content_type = metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


# -- VM authentication (heartbeat and other VM-facing endpoints) ----------------------------


@dataclass(frozen=True)
class VMIdentity:
    """A GameVM whose bearer token was verified."""

    namespace: str
    name: str
    uid: str


async def authenticate_vm(request: web.Request) -> VMIdentity | web.Response:
    """The GameVM named by `{namespace}/{name}` in the path, if the request carries its token.

    Per-source rate limit first (429), then one uniform 401 for a missing token, an unknown
    VM and a wrong token: the answer and the work are the same (one HKDF and a
    constant-time compare), so the endpoint tells nobody which GameVMs exist.
    """
    app = request.app[APP_KEY]
    wait = request.app[LIMITER_KEY].acquire(request.remote or "unknown")
    if wait > 0:
        return web.json_response(
            {"error": "rate_limited", "message": "too many requests from this address"},
            status=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    token = _bearer(request) or ""
    uid = app.uids.get(f"{namespace}/{name}")
    runtime = app.runtimes.get(uid) if uid else None
    key = app.keys.key(runtime.access_key_id) if app.keys and runtime else None
    known = uid is not None and key is not None
    matches = verify_heartbeat_token(key or _DUMMY_KEY, uid or _DUMMY_UID, token)
    if not (known and matches and token):
        return _unauthorized()
    assert uid is not None  # noqa: S101  # `known`
    return VMIdentity(namespace, name, uid)


async def heartbeat(request: web.Request) -> web.Response:
    """`POST /v1/gamevms/{namespace}/{name}/activity` with the VM's bearer token."""
    vm = await authenticate_vm(request)
    if isinstance(vm, web.Response):
        return vm
    now = datetime.now(UTC)
    request.app[APP_KEY].runtime(vm.uid).heartbeat = now
    return web.json_response(
        {"gamevm": f"{vm.namespace}/{vm.name}", "lastActivity": now.isoformat()}
    )


def _report_from(payload: Any, now: datetime, address: str | None) -> ConfigurationReport | str:
    """The report in a request body, or what is wrong with it."""
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    flags = {}
    for field in ("gamingEnvironmentReady", "gamesMounted"):
        value = payload.get(field)
        if not isinstance(value, bool):
            return f"{field} must be true or false"
        flags[field] = value
    message = payload.get("message", "")
    if not isinstance(message, str):
        return "message must be a string"
    return ConfigurationReport(
        received_at=now,
        ready=flags["gamingEnvironmentReady"],
        games_mounted=flags["gamesMounted"],
        message=message[:MAX_REPORT_MESSAGE],
        address=address,
    )


async def configuration_report(request: web.Request) -> web.Response:
    """`POST /v1/gamevms/{namespace}/{name}/configuration`: the VM's configuration report
    (sent once by its user data), authenticated like the heartbeat."""
    vm = await authenticate_vm(request)
    if isinstance(vm, web.Response):
        return vm
    key, uid = f"{vm.namespace}/{vm.name}", vm.uid
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    app = request.app[APP_KEY]
    settings = app.settings
    # Where this VM is, from the authenticated connection (never from the body): the
    # operator then needs no per-instance provider look for its IP.
    address = report_address(
        request.remote,
        request.headers.getall("X-Forwarded-For", []),
        trusted_networks(settings.api_trusted_proxies),
        allow_loopback=settings.wolf_probe_allow_loopback,
    )
    report = _report_from(payload, datetime.now(UTC), address)
    if isinstance(report, str):
        return web.json_response({"error": report}, status=400)
    runtime = app.runtime(uid)
    # Persisted before the VM hears "accepted": the VM reports once, and an operator
    # restart right after must not lose it. Its daemon's next status write stores it
    # (with the transition it brings, often `running`: one write for both); only when
    # that takes too long is it written on its own.
    written = runtime.written_status
    if written is not None and already_stored(GameVMStatus.model_validate(written), report):
        return _accepted(key, report)
    runtime.configuration = report
    if not await _stored_by_next_step(runtime, report, settings.report_wait_seconds):
        namespace, name = key.split("/", 1)
        stored = ConfigurationStatus(
            reported_at=report.received_at,
            ready=report.ready,
            games_mounted=report.games_mounted,
            message=report.message,
            address=report.address,
        )
        try:
            fields = {
                "configuration": stored.model_dump(mode="json", exclude_none=True),
                "gamesMounted": report.games_mounted,
            }
            await app.kube.patch_gamevm_status(namespace, name, fields)
        except KubeError as exc:
            log.warning("%s: configuration report not stored (%s); the VM retries", key, exc)
            return web.json_response({"error": "cannot store the report now; retry"}, status=503)
        if runtime.written_status is not None:
            # So the daemon's next patch leaves out what is already there.
            runtime.written_status = {**runtime.written_status, **fields}
        runtime.wake.set()
    return _accepted(key, report)


def _accepted(key: str, report: ConfigurationReport) -> web.Response:
    return web.json_response(
        {
            "gamevm": key,
            "gamingEnvironmentReady": report.ready,
            "gamesMounted": report.games_mounted,
            "receivedAt": report.received_at.isoformat(),
        }
    )


async def _stored_by_next_step(
    runtime: VMRuntime, report: ConfigurationReport, wait_seconds: float
) -> bool:
    """Wake the VM's daemon and wait (bounded) until a status write holds this report."""
    if wait_seconds <= 0 or not runtime.daemon_alive:
        return False
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    entry = (report.received_at, future)
    runtime.report_waiters.append(entry)
    runtime.wake.set()
    try:
        await asyncio.wait_for(future, wait_seconds)
    except TimeoutError:
        return False
    finally:
        if entry in runtime.report_waiters:
            runtime.report_waiters.remove(entry)
    return True


# -- read API authentication ------------------------------------------------------------------


@web.middleware
async def read_api_authentication(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """TokenReview for every read-API request; the routes authorize per GameVM."""
    if not request.path.startswith(READ_API_PREFIX):
        return await handler(request)
    token = _bearer(request)
    if token is None:
        return _unauthorized()
    try:
        caller = await request.app[AUTHORIZER_KEY].authenticate(token)
    except Exception as exc:  # noqa: BLE001  # any review failure is "cannot tell": 503
        log.warning("TokenReview failed: %s", type(exc).__name__)
        return web.json_response(
            {"error": "auth_unavailable", "message": "cannot review the token now; retry"},
            status=503,
        )
    if caller is None:
        return _unauthorized()
    request[CALLER_KEY] = caller
    return await handler(request)


class ReviewedAccess:
    """mirror.api.VMAccess: a caller sees a VM only if it may `get` that GameVM."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer

    async def may_get(self, request: web.Request, namespace: str | None, name: str) -> bool:
        """SubjectAccessReview (cached) for the caller the middleware authenticated."""
        return await self._authorizer.may_get_gamevm(request[CALLER_KEY], namespace, name)

    async def may_list(self, request: web.Request, namespace: str) -> bool:
        """Whether the caller may get every GameVM of `namespace` ("" = all namespaces)."""
        return await self._authorizer.may_get_gamevm(request[CALLER_KEY], namespace, "")


# -- applications -----------------------------------------------------------------------------


def build_ops_app(context: AppContext) -> web.Application:
    """Health and metrics."""
    application = web.Application(client_max_size=1024)
    application[APP_KEY] = context
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/metrics", metrics_endpoint)
    return application


def build_api_app(context: AppContext, authorizer: Authorizer) -> web.Application:
    """Heartbeat and read API (the read API only when the mirror is on)."""
    settings = context.settings
    application = web.Application(client_max_size=64 * 1024, middlewares=[read_api_authentication])
    application[APP_KEY] = context
    application[AUTHORIZER_KEY] = authorizer
    application[LIMITER_KEY] = SourceRateLimiter(
        settings.heartbeat_rate_per_second, settings.heartbeat_burst
    )
    application.router.add_post("/v1/gamevms/{namespace}/{name}/activity", heartbeat)
    application.router.add_post(REPORT_PATH, configuration_report)
    if context.mirror is not None:
        from gamevm.mirror.api import add_routes

        add_routes(application, context.mirror, ReviewedAccess(authorizer))
    return application


KEEPALIVE_SECONDS = 5.0
"""How long an idle client connection is kept (aiohttp's default is 75 s). Clients here
send one request now and then: a VM its report or heartbeat, Prometheus a scrape, the
kubelet a probe. Kept 75 s, a thousand VMs reporting within a minute hold a thousand idle
sockets (file descriptors and buffers; bench/README.md, memory while placing)."""


async def _serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner


async def _standby_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "standby"})


async def start_standby_server(settings: Settings) -> web.AppRunner:
    """/healthz for a replica waiting for the Lease (it serves nothing else)."""
    application = web.Application(client_max_size=1024)
    application.router.add_get("/healthz", _standby_healthz)
    return await _serve(application, settings.http_host, settings.http_port)


async def start_servers(context: AppContext, authorizer: Authorizer) -> list[web.AppRunner]:
    """Start both servers (an OSError when a port is taken)."""
    settings = context.settings
    ops = await _serve(build_ops_app(context), settings.http_host, settings.http_port)
    try:
        api = await _serve(build_api_app(context, authorizer), settings.api_host, settings.api_port)
    except OSError:
        await ops.cleanup()
        raise
    return [ops, api]
