"""Leader election settings (the election itself runs against the real API server in
tests/e2e/test_leader_election_e2e.py)."""

import subprocess
import sys

from gamevm.main import EXIT_LOST_LEADERSHIP, HARD_EXIT_AFTER_LOSS_SECONDS, lease_name
from gamevm.settings import Settings


def test_each_shard_elects_on_its_own_lease() -> None:
    assert lease_name(Settings()) == "gamevm-operator"
    assert lease_name(Settings(shard="1/3")) == "gamevm-operator-shard-1-of-3"
    assert lease_name(Settings(shard="0/1")) == "gamevm-operator"


# A leader whose shutdown hangs (a task that never finishes) once it lost its Lease.
_HUNG_AFTER_LOSS = """
import asyncio
from gamevm.main import _lost

async def main() -> None:
    _lost(asyncio.Event())
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_leader_that_lost_its_lease_exits_3_even_when_its_shutdown_hangs() -> None:
    # kopf's stop flag has no bound (see gamevm.main._lost); the hard exit is the bound.
    done = subprocess.run(
        [sys.executable, "-c", _HUNG_AFTER_LOSS],
        capture_output=True,
        text=True,
        timeout=HARD_EXIT_AFTER_LOSS_SECONDS + 30,
        check=False,
    )
    assert done.returncode == EXIT_LOST_LEADERSHIP, done.stderr
