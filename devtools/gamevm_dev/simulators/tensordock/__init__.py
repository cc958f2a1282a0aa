"""A TensorDock-v2-compatible API server for tests and the local stack.

In-process: `create_app(...)` returns the aiohttp Application; `running_sim(...)` is an
async context manager that serves it on 127.0.0.1:<free port> and yields a
`RunningSim` (base_url ending in /api/v2, token, app). As a process:
`python -m gamevm_dev.simulators.tensordock --host 127.0.0.1 --port P [--token T]
[--state-file F] [--delay-scale S] [--seed N] [--faults JSON] [--rate-limit N]`.
API shapes: `gamevm_dev.simulators.tensordock.app`; faults: `...tensordock.faults`;
lifecycle: `...tensordock.store`.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from gamevm_dev.simulators.ports import LOOPBACK
from gamevm_dev.simulators.tensordock.app import API, DEFAULT_TOKEN, FAULTS, STORE, create_app
from gamevm_dev.simulators.tensordock.faults import FaultInjector
from gamevm_dev.simulators.tensordock.store import Store

__all__ = ["RunningSim", "create_app", "running_sim"]


@dataclass
class RunningSim:
    """A simulator served in-process."""

    base_url: str
    """Ends in /api/v2."""
    root_url: str
    """Scheme, host and port: the control API lives under root_url + /_sim/."""
    token: str
    app: web.Application

    @property
    def store(self) -> Store:
        """Direct access to instances (in-process tests only)."""
        return self.app[STORE]

    @property
    def faults(self) -> FaultInjector:
        """Direct access to the fault injector (in-process tests only)."""
        return self.app[FAULTS]


@asynccontextmanager
async def running_sim(
    *,
    token: str = DEFAULT_TOKEN,
    delay_scale: float = 0.0,
    seed: int = 0,
    faults: dict[str, Any] | None = None,
    rate_limit_per_minute: int = 100_000,
    state_file: Path | None = None,
) -> AsyncIterator[RunningSim]:
    """Serve the simulator on 127.0.0.1:<free port> for the duration of the block."""
    app = create_app(
        token=token,
        delay_scale=delay_scale,
        seed=seed,
        faults=faults,
        rate_limit_per_minute=rate_limit_per_minute,
        state_file=state_file,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = int(runner.addresses[0][1])
    root = f"http://{LOOPBACK}:{port}"
    try:
        yield RunningSim(base_url=root + API, root_url=root, token=token, app=app)
    finally:
        await runner.cleanup()
