"""A Wolf look-alike for the Moonlight HTTP port: `GET /serverinfo` only.

Real Wolf (games-on-whales/wolf, `src/moonlight-protocol/moonlight.cpp`) answers
`/serverinfo` with XML under `<root status_code="200">` carrying hostname,
uniqueid, HttpsPort, ExternalPort, PairStatus, currentgame and `state`
(SUNSHINE_SERVER_FREE or SUNSHINE_SERVER_BUSY). This responder serves the same
document on 127.0.0.1 so activity detection runs against real HTTP.

Choices where the docs are silent:
- BUSY reports `currentgame` 1 (the id of a running app), FREE reports 0.
- HttpsPort/ExternalPort are Wolf's own constants (47984/47989): the VM does not
  know which external port a provider forwards to it.
- Control path (simulator only, not Wolf): `GET /_sim/state` -> {"state": "busy"|"free"},
  `POST /_sim/state` with {"state": "busy"|"free"} switches it.

Two ways to run it:
- in-process: `WolfResponder(hostname).start()` / `.stop()` on the caller's event loop
  (the TensorDock simulator runs one per running VM);
- detached: `python -m gamevm_dev.simulators.wolf --port P --state-file F --port-file F
  [--not-before EPOCH]` (the CloudyPad CLI simulator spawns one per running VM). With
  `--state-file` the state is re-read from that file on every request, so another
  process can flip it by writing "busy" or "free" into the file.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import time
import uuid
from enum import StrEnum
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web

from gamevm_dev.simulators.ports import LOOPBACK, WOLF_HTTP_PORT

WOLF_HTTPS_PORT = 47984


class WolfState(StrEnum):
    """Whether a Moonlight client is streaming."""

    FREE = "free"
    BUSY = "busy"

    @property
    def sunshine(self) -> str:
        """The value of `<state>` in /serverinfo."""
        return "SUNSHINE_SERVER_BUSY" if self is WolfState.BUSY else "SUNSHINE_SERVER_FREE"


def parse_state(value: str) -> WolfState:
    """Accepts busy/free in any case, or the SUNSHINE_SERVER_* spelling."""
    text = value.strip().lower()
    if text in ("busy", "sunshine_server_busy"):
        return WolfState.BUSY
    if text in ("free", "sunshine_server_free"):
        return WolfState.FREE
    raise ValueError(f"unknown Wolf state {value!r}: use busy or free")


def render_serverinfo(hostname: str, unique_id: str, state: WolfState) -> str:
    """The XML body Wolf returns for GET /serverinfo."""
    current_game = 1 if state is WolfState.BUSY else 0
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<root status_code="200">'
        f"<hostname>{escape(hostname)}</hostname>"
        "<appversion>7.1.431.-1</appversion>"
        "<GfeVersion>3.23.0.74</GfeVersion>"
        f"<uniqueid>{escape(unique_id)}</uniqueid>"
        f"<HttpsPort>{WOLF_HTTPS_PORT}</HttpsPort>"
        f"<ExternalPort>{WOLF_HTTP_PORT}</ExternalPort>"
        "<MaxLumaPixelsHEVC>0</MaxLumaPixelsHEVC>"
        "<mac>00:00:00:00:00:00</mac>"
        f"<LocalIP>{LOOPBACK}</LocalIP>"
        "<ServerCodecModeSupport>1</ServerCodecModeSupport>"
        "<PairStatus>0</PairStatus>"
        f"<currentgame>{current_game}</currentgame>"
        f"<state>{state.sunshine}</state>"
        "</root>"
    )


class WolfResponder:
    """One simulated Wolf HTTP server on a loopback address (127.0.0.1 by default)."""

    def __init__(
        self,
        hostname: str = "Wolf",
        *,
        state: WolfState = WolfState.FREE,
        state_file: Path | None = None,
    ) -> None:
        self.hostname = hostname
        self.unique_id = uuid.uuid4().hex
        self._state = state
        self._state_file = state_file
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.requests = 0

    @property
    def state(self) -> WolfState:
        """Current state; the state file wins when one is configured and readable."""
        if self._state_file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._state = parse_state(self._state_file.read_text())
        return self._state

    @state.setter
    def state(self, value: WolfState) -> None:
        self._state = value
        if self._state_file is not None:
            self._state_file.write_text(value.value)

    @property
    def running(self) -> bool:
        """True while the HTTP server is bound."""
        return self._runner is not None

    def app(self) -> web.Application:
        """The aiohttp application: /serverinfo plus the simulator's control path."""
        app = web.Application()
        app.router.add_get("/serverinfo", self._serverinfo)
        app.router.add_get("/_sim/state", self._get_state)
        app.router.add_post("/_sim/state", self._set_state)
        return app

    async def start(self, port: int = 0, host: str = LOOPBACK) -> int:
        """Bind on `host`:`port` (0 = any free port) and return the bound port."""
        if self._runner is not None and self.port is not None:
            return self.port
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self.port

    async def stop(self) -> None:
        """Stop answering (the VM is off)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serverinfo(self, _request: web.Request) -> web.Response:
        self.requests += 1
        body = render_serverinfo(self.hostname, self.unique_id, self.state)
        return web.Response(text=body, content_type="application/xml")

    async def _get_state(self, _request: web.Request) -> web.Response:
        return web.json_response({"state": self.state.value})

    async def _set_state(self, request: web.Request) -> web.Response:
        payload = await request.json()
        try:
            self.state = parse_state(str(payload.get("state", "")))
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"state": self.state.value})


def _publish_port(port_file: Path, port: int) -> None:
    """Write the bound port atomically so readers never see a partial number."""
    tmp = port_file.with_name(port_file.name + ".tmp")
    tmp.write_text(str(port))
    tmp.replace(port_file)


async def _serve_detached(args: argparse.Namespace) -> None:
    """Body of the detached process: wait for boot, bind, publish the port, serve."""
    delay = args.not_before - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    state_file = Path(args.state_file) if args.state_file else None
    responder = WolfResponder(args.hostname, state_file=state_file)
    try:
        port = await responder.start(args.port)
    except OSError:
        port = await responder.start(0)  # the pre-picked port was taken meanwhile
    if args.port_file:
        _publish_port(Path(args.port_file), port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await responder.stop()


def main(argv: list[str] | None = None) -> None:
    """`python -m gamevm_dev.simulators.wolf`: one detached Wolf responder."""
    parser = argparse.ArgumentParser(
        prog="python -m gamevm_dev.simulators.wolf",
        description="Simulated Wolf /serverinfo responder",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hostname", default="Wolf")
    parser.add_argument("--state-file", default=None, help="file holding busy|free")
    parser.add_argument("--port-file", default=None, help="where to write the bound port")
    parser.add_argument("--not-before", type=float, default=0.0, help="epoch to bind at")
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        os.setsid()  # own session: outlives the short-lived CLI that spawned it
    asyncio.run(_serve_detached(args))


if __name__ == "__main__":
    main()
