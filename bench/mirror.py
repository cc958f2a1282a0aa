"""Mirror benchmark: MongoDB writes per GameVM lifecycle and write latency (p50/p99).

Starts the local MongoDB-compatible server on a free 127.0.0.1 port in a temporary folder,
drives N VM lifecycles through the Mirror as the handlers would (one enqueue per watch
event), and prints the figures. Run: .venv/bin/python bench/mirror.py [--vms 50]
"""

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # the sample objects live with the test fixtures
    sys.path.insert(0, str(REPO))

from gamevm.mirror.repository import Mirror  # noqa: E402
from gamevm_dev.devstack.mongo import (  # noqa: E402
    mongo_binary,
    mongo_command,
    mongo_uri,
    wait_until_ready,
)
from gamevm_dev.simulators.ports import free_port  # noqa: E402
from tests.fixtures.mongo import gamevm_body  # noqa: E402

# One lifecycle as the watch stream shows it: each step is one new resourceVersion.
LIFECYCLE: list[tuple[str, dict[str, Any]]] = [
    ("creating", {"providerInstanceId": None, "ipAddress": None}),
    ("creating", {"ipAddress": None}),
    ("configuring", {}),
    ("running", {"gamingEnvironmentReady": True}),
    *[("running", {"lastActivity": f"2026-11-26T10:{m:02d}:00Z"}) for m in range(21, 26)],
    ("stopped", {}),
]


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct))] * 1000


async def _run_lifecycles(uri: str, database: str, vms: int, pause: float) -> dict[str, float]:
    mirror = Mirror(uri, database, retention_seconds=10 * 365 * 24 * 3600)
    await mirror.start()
    while not mirror.stats.indexes_ready:  # noqa: ASYNC110 - a counter, no event to await
        await asyncio.sleep(0.01)

    async def lifecycle(n: int) -> int:
        uid, version, events = f"bench-{n}", n * 1000, 0
        body: dict[str, Any] = {}
        for phase, status in LIFECYCLE:
            version += 1
            body = gamevm_body(
                uid, name=f"vm{n}", resource_version=version, phase=phase, status=status
            )
            mirror.enqueue_vm_from(body)
            events += 1
            await asyncio.sleep(pause)
        mirror.enqueue_vm_terminated_from(body)
        return events + 1

    started = time.monotonic()
    events = sum(await asyncio.gather(*(lifecycle(n) for n in range(vms))))
    await mirror.flush()
    elapsed = time.monotonic() - started
    stats = mirror.stats
    await mirror.aclose()
    return {
        "events_per_vm": events / vms,
        "writes_per_vm": stats.writes / vms,
        "write_p50_ms": _pct(list(stats.write_seconds), 0.50),
        "write_p99_ms": _pct(list(stats.write_seconds), 0.99),
        "ack_p50_ms": _pct(list(stats.enqueue_to_ack_seconds), 0.50),
        "ack_p99_ms": _pct(list(stats.enqueue_to_ack_seconds), 0.99),
        "writes_per_s": stats.writes / elapsed,
        "mean_write_ms": statistics.fmean(stats.write_seconds) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=50)
    args = parser.parse_args()
    binary = mongo_binary()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gamevm-bench-") as tmp:
        command = mongo_command(binary, Path(tmp) / "data", port)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_ready(port, process=process)
            print(f"server: {binary.name} on 127.0.0.1:{port}")
            scenarios = (
                ("light: 5 VMs, event every 200 ms", 5, 0.2),
                (f"{args.vms} VMs, event every 50 ms", args.vms, 0.05),
                (f"{args.vms} VMs, burst", args.vms, 0.0),
            )
            for number, (label, vms, pause) in enumerate(scenarios):
                result = asyncio.run(
                    _run_lifecycles(mongo_uri(port), f"bench_{number}", vms, pause)
                )
                print(
                    f"{label}: {result['events_per_vm']:.0f} events/VM -> "
                    f"{result['writes_per_vm']:.1f} Mongo writes/VM; "
                    f"write latency p50 {result['write_p50_ms']:.2f} ms, "
                    f"p99 {result['write_p99_ms']:.2f} ms; "
                    f"enqueue->ack p50 {result['ack_p50_ms']:.2f} ms, "
                    f"p99 {result['ack_p99_ms']:.2f} ms; {result['writes_per_s']:.0f} writes/s"
                )
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
