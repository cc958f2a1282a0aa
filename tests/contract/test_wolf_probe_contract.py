"""The Wolf probe against real local HTTP servers: no redirect is followed, no refused
address is ever connected to."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gamevm.providers.addresses import UnsafeAddressError
from gamevm.providers.wolf import HttpWolfProbe

SERVERINFO = "<root status_code='200'><state>SUNSHINE_SERVER_FREE</state></root>"


@dataclass
class Server:
    port: int
    hits: list[str] = field(default_factory=list)


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)


@pytest.fixture
async def internal() -> AsyncIterator[Server]:
    """Stands for an address inside the cluster: records every request it gets."""
    server = Server(0)

    async def record(request: web.Request) -> web.Response:
        server.hits.append(request.path)
        return web.Response(text=SERVERINFO, content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner, server.port = await _serve(app)
    yield server
    await runner.cleanup()


@pytest.fixture
async def redirecting_vm(internal: Server) -> AsyncIterator[Server]:
    """A VM's Wolf port answering 302 to the internal server's admin page."""
    server = Server(0)

    async def redirect(request: web.Request) -> web.Response:
        server.hits.append(request.path)
        raise web.HTTPFound(f"http://127.0.0.1:{internal.port}/internal/admin")

    app = web.Application()
    app.router.add_get("/serverinfo", redirect)
    runner, server.port = await _serve(app)
    yield server
    await runner.cleanup()


async def test_a_redirect_from_the_wolf_port_is_not_followed(
    redirecting_vm: Server, internal: Server
) -> None:
    probe = HttpWolfProbe(2.0, allow_loopback=True)
    try:
        assert await probe.probe("127.0.0.1", redirecting_vm.port) is None
        assert redirecting_vm.hits == ["/serverinfo"]
        await asyncio.sleep(0.1)
        assert internal.hits == [], "the probe followed the redirect"
        # The same server is reachable directly: only the redirect was refused.
        direct = await probe.probe("127.0.0.1", internal.port)
        assert direct is not None
        assert internal.hits == ["/serverinfo"]
    finally:
        await probe.aclose()


async def test_refused_addresses_are_never_connected_to(internal: Server) -> None:
    probe = HttpWolfProbe(2.0)  # the default: loopback refused too
    try:
        for host in ("127.0.0.1", "10.0.0.7", "169.254.169.254", "192.168.1.1", "localhost"):
            with pytest.raises(UnsafeAddressError):
                await probe.probe(host, internal.port)
        assert internal.hits == []
    finally:
        await probe.aclose()


async def test_a_probe_keeps_no_connection_open() -> None:
    """Each probe opens its connection and closes it: a thousand VMs probed as they come
    up hold no thousand idle sockets (bench/README.md, memory while placing)."""
    peers: list[tuple[str, int]] = []

    async def serverinfo(request: web.Request) -> web.Response:
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peers.append(peername)
        return web.Response(text=SERVERINFO, content_type="application/xml")

    app = web.Application()
    app.router.add_get("/serverinfo", serverinfo)
    runner, port = await _serve(app)
    probe = HttpWolfProbe(2.0, allow_loopback=True)
    try:
        assert await probe.probe("127.0.0.1", port) is not None
        assert await probe.probe("127.0.0.1", port) is not None
        assert len(set(peers)) == 2, "the second probe reused the first one's connection"
        server = runner.server
        assert server is not None
        async with asyncio.timeout(2):
            while server.connections:  # the server saw each one closed
                await asyncio.sleep(0.02)
    finally:
        await probe.aclose()
        await runner.cleanup()
