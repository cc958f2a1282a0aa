"""Two operator shards against one API server: every GameVM is handled by exactly one.

GAMEVM_SHARD=0/2 and 1/2 run side by side with the same simulators. Each VM must get one
instance (no double create), carry only its own shard's finalizer, and be released on
delete by that shard alone.
"""

from collections.abc import Callable

import pytest

from gamevm.services.reconcile import instance_name
from gamevm.services.sharding import shard_of
from tests.fixtures.operator_env import GameVMs, start_operator
from tests.fixtures.simulators import CloudyPadSimHandle, TensorDockSimHandle
from tests.fixtures.stack import Kubectl, OperatorProcess

pytestmark = pytest.mark.e2e

VMS = 16
FINALIZER = "gamevm.dev/finalizer"


async def _live(sim: TensorDockSimHandle) -> list[dict[str, object]]:
    listing = await sim.instances()
    return [i for i in listing["instances"] if not i.get("deleted")]


def test_two_shards_handle_every_vm_exactly_once(
    kubectl: Kubectl,
    operator_ns: str,
    operator_process: Callable[..., OperatorProcess],
    tensordock_sim: TensorDockSimHandle,
    cloudypad_sim: CloudyPadSimHandle,
    gamevms: GameVMs,
) -> None:
    import asyncio

    shards = [
        start_operator(
            kubectl,
            operator_ns,
            operator_process,
            tensordock_sim,
            cloudypad_sim,
            {"GAMEVM_SHARD": f"{i}/2", "GAMEVM_WATCH_NAMESPACES": f'["{gamevms.namespace}"]'},
        )
        for i in range(2)
    ]
    for i, shard in enumerate(shards):
        shard.process.wait_for_log(f"shard {i}/2", timeout=10)
    names = [f"sharded-{i:02d}" for i in range(VMS)]
    for name in names:
        gamevms.apply(name)
    owners: dict[int, list[str]] = {0: [], 1: []}
    for name in names:
        status = gamevms.wait_phase(name, "running", timeout=120)
        obj = gamevms.get(name)
        assert obj is not None
        uid = obj["metadata"]["uid"]
        owner = shard_of(uid, 2)
        owners[owner].append(name)
        # Only the owning shard's finalizer: the other never touched it.
        assert obj["metadata"]["finalizers"] == [f"{FINALIZER}-shard-{owner}"], name
        assert status["instanceName"] == instance_name(uid)
    assert owners[0], owners
    assert owners[1], owners
    live = asyncio.run(_live(tensordock_sim))
    live_names = sorted(str(i["name"]) for i in live)
    # One instance per VM: no VM was created by both shards.
    assert len(live_names) == VMS
    assert len(set(live_names)) == VMS
    for name in names:
        gamevms.delete(name)
    for name in names:
        gamevms.wait_gone(name, timeout=120)
    assert asyncio.run(_live(tensordock_sim)) == []
