"""The operator's HTTP servers close idle client connections after KEEPALIVE_SECONDS."""

import asyncio
import socket
import time

from gamevm.handlers.http import KEEPALIVE_SECONDS, start_standby_server
from gamevm.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_idle_client_connection_is_closed_after_the_keepalive() -> None:
    """A VM that reported once holds no socket for aiohttp's default 75 s."""
    settings = Settings(http_host="127.0.0.1", http_port=_free_port())
    runner = await start_standby_server(settings)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.http_port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: operator\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        await reader.readexactly(length)
        answered = time.monotonic()
        async with asyncio.timeout(KEEPALIVE_SECONDS + 5):
            assert await reader.read() == b"", "the server sent more than one answer"
        assert time.monotonic() - answered >= KEEPALIVE_SECONDS - 1
        writer.close()
    finally:
        await runner.cleanup()
