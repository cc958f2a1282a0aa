"""The operator's HTTP server: health, metrics, the heartbeat endpoint and the read API."""

import logging
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gamevm import metrics
from gamevm.handlers.context import AppContext
from gamevm.handlers.kube import KubeError
from gamevm.models.gamevm import ConfigurationStatus
from gamevm.services.access import verify_heartbeat_token
from gamevm.services.configuration import MAX_REPORT_MESSAGE, REPORT_PATH, ConfigurationReport

APP_KEY = web.AppKey("gamevm", AppContext)
log = logging.getLogger(__name__)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


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


def _authenticate(request: web.Request) -> tuple[str, str] | web.Response:
    """(namespace/name, uid) of the GameVM whose bearer token came, or the error reply."""
    app = request.app[APP_KEY]
    key = f"{request.match_info['namespace']}/{request.match_info['name']}"
    token = _bearer(request)
    if token is None:
        return web.json_response(
            {"error": "missing bearer token (the VM's access Secret, key heartbeat-token)"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    uid = app.uids.get(key)
    if uid is None or app.master_key is None:
        return web.json_response({"error": f"no GameVM {key} is being reconciled"}, status=404)
    if not verify_heartbeat_token(app.master_key, uid, token):
        return web.json_response(
            {"error": "invalid token for this GameVM"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key, uid


async def heartbeat(request: web.Request) -> web.Response:
    """`POST /v1/gamevms/{namespace}/{name}/activity` with the VM's bearer token."""
    who = _authenticate(request)
    if isinstance(who, web.Response):
        return who
    key, uid = who
    now = datetime.now(UTC)
    request.app[APP_KEY].runtime(uid).heartbeat = now
    return web.json_response({"gamevm": key, "lastActivity": now.isoformat()})


def _report_from(payload: Any, now: datetime) -> ConfigurationReport | str:
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
    )


async def configuration_report(request: web.Request) -> web.Response:
    """`POST /v1/gamevms/{namespace}/{name}/configuration`: the VM's configuration report
    (sent once by its user data), authenticated like the heartbeat."""
    who = _authenticate(request)
    if isinstance(who, web.Response):
        return who
    key, uid = who
    try:
        payload = await request.json()
    except ValueError:
        payload = None
    report = _report_from(payload, datetime.now(UTC))
    if isinstance(report, str):
        return web.json_response({"error": report}, status=400)
    app = request.app[APP_KEY]
    namespace, name = key.split("/", 1)
    stored = ConfigurationStatus(
        reported_at=report.received_at,
        ready=report.ready,
        games_mounted=report.games_mounted,
        message=report.message,
    )
    try:
        # Persisted before the VM hears "accepted": the VM reports once, and an operator
        # restart right after must not lose it.
        await app.kube.patch_gamevm_status(
            namespace, name, {"configuration": stored.model_dump(mode="json", exclude_none=True)}
        )
    except KubeError as exc:
        log.warning("%s: configuration report not stored (%s); the VM retries", key, exc)
        return web.json_response({"error": "cannot store the report now; retry"}, status=503)
    runtime = app.runtime(uid)
    runtime.configuration = report
    runtime.wake.set()
    return web.json_response(
        {
            "gamevm": key,
            "gamingEnvironmentReady": report.ready,
            "gamesMounted": report.games_mounted,
            "receivedAt": report.received_at.isoformat(),
        }
    )


def build_app(context: AppContext) -> web.Application:
    """The aiohttp application (the mirror's read API is added when the mirror is on)."""
    application = web.Application(client_max_size=64 * 1024)
    application[APP_KEY] = context
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/metrics", metrics_endpoint)
    application.router.add_post("/v1/gamevms/{namespace}/{name}/activity", heartbeat)
    application.router.add_post(REPORT_PATH, configuration_report)
    if context.mirror is not None:
        from gamevm.mirror.api import add_routes

        add_routes(application, context.mirror)
    return application


async def start_server(context: AppContext) -> web.AppRunner:
    """Start serving on the configured address."""
    runner = web.AppRunner(build_app(context), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, context.settings.http_host, context.settings.http_port)
    await site.start()
    return runner
