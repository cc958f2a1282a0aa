"""The operator's HTTP server: health, metrics, the heartbeat endpoint and the read API."""

import time
from datetime import UTC, datetime

from aiohttp import web

from gamevm import metrics
from gamevm.handlers.context import AppContext
from gamevm.services.access import verify_heartbeat_token

APP_KEY = web.AppKey("gamevm", AppContext)


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


async def heartbeat(request: web.Request) -> web.Response:
    """`POST /v1/gamevms/{namespace}/{name}/activity` with the VM's bearer token."""
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
    now = datetime.now(UTC)
    app.runtime(uid).heartbeat = now
    return web.json_response({"gamevm": key, "lastActivity": now.isoformat()})


def build_app(context: AppContext) -> web.Application:
    """The aiohttp application (the mirror's read API is added when the mirror is on)."""
    application = web.Application(client_max_size=64 * 1024)
    application[APP_KEY] = context
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/metrics", metrics_endpoint)
    application.router.add_post("/v1/gamevms/{namespace}/{name}/activity", heartbeat)
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
