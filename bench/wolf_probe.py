"""What one Wolf `/serverinfo` probe costs the operator: aiohttp against a bare asyncio GET.

Run: `python -m bench.wolf_probe [PROBES] [CONCURRENCY]`. A simulated Wolf
(`gamevm_dev.simulators.wolf`) answers in its own process; this process times only the
client side (CPU seconds of this process per probe, `time.process_time`), for:

- `aiohttp`: the operator's `HttpWolfProbe` as it is (one session; it keeps the
  connection to the one responder alive, which real VMs probed 30 s or more apart do not
  allow: aiohttp's keep-alive is 15 s);
- `aiohttp-close`: the same with a connector that closes every connection (what each
  probe of a real VM costs: a new TCP connection);
- `asyncio`: a bare HTTP/1.0 GET over `asyncio.open_connection` (a new connection each,
  read to EOF under a size cap), parsed by the same `parse_serverinfo`.
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from gamevm.providers.wolf import MAX_BODY_BYTES, HttpWolfProbe, WolfStatus, parse_serverinfo

PROBE_TIMEOUT = 3.0
Probe = Callable[[str, int], Awaitable[WolfStatus | None]]


async def bare_probe(host: str, port: int) -> WolfStatus | None:
    """The candidate: HTTP/1.0 GET, one connection per probe, bounded read."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(
                    f"GET /serverinfo HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("ascii")
                )
                data = await reader.read(MAX_BODY_BYTES + 8192)
                while len(data) < MAX_BODY_BYTES + 8192:
                    more = await reader.read(MAX_BODY_BYTES + 8192 - len(data))
                    if not more:
                        break
                    data += more
            finally:
                writer.close()
    except (TimeoutError, OSError):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
        return None
    return parse_serverinfo(body[:MAX_BODY_BYTES].decode(errors="replace"))


async def measure(probe: Probe, port: int, n: int, concurrency: int) -> tuple[float, float]:
    """CPU seconds and wall seconds of this process for `n` probes, `concurrency` at once."""
    await probe("127.0.0.1", port)  # warm up (session, imports)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            assert await probe("127.0.0.1", port) is not None  # noqa: S101

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.process_time() - cpu, time.monotonic() - wall


async def run(port: int, n: int, concurrency: int) -> None:
    kept = HttpWolfProbe(3.0, allow_loopback=True)
    closing = HttpWolfProbe(3.0, allow_loopback=True)
    closing._session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=3.0, connect=3.0),
        trust_env=False,
        connector=aiohttp.TCPConnector(force_close=True),
    )
    try:
        for name, probe in (
            ("aiohttp", kept.probe),
            ("aiohttp-close", closing.probe),
            ("asyncio", bare_probe),
        ):
            cpu, wall = await measure(probe, port, n, concurrency)
            print(
                f"{name:14s} {n} probes, {concurrency} at once: {cpu / n * 1e6:7.0f} us CPU "
                f"per probe ({wall:.2f} s wall)"
            )
    finally:
        await kept.aclose()
        await closing.aclose()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        wolf = subprocess.Popen(
            [sys.executable, "-m", "gamevm_dev.simulators.wolf", "--port-file", str(port_file)]
        )
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            port = int(port_file.read_text())
            print(f"load average {os.getloadavg()[0]:.2f}")
            asyncio.run(run(port, n, concurrency))
            print(f"load average {os.getloadavg()[0]:.2f}")
        finally:
            wolf.terminate()
            wolf.wait(timeout=10)


if __name__ == "__main__":
    main()
