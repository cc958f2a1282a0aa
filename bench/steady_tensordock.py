"""The TensorDock simulator preloaded with N running instances (bench only).

Run: `python bench/steady_tensordock.py --preload FILE --wolf-port P <simulator flags>`.
FILE is a JSON list of {"id", "name", "hostnode_id"}; every instance starts `running`.
The stock simulator gives each running VM its own Wolf responder (one listening socket
each); at 10,000 VMs on one loopback address that costs the simulator, not the operator,
so here every preloaded VM forwards Wolf's HTTP port to one shared responder on port P.
The operator sees what it would see of 10,000 real VMs: an IP and a port that answer.
The state file is only read at start (writing 10,000 VMs back on every change would make
the simulator, not the operator, the bottleneck).
"""

import json
import sys
import time
from pathlib import Path
from typing import Any

from gamevm_dev.simulators.ports import SSH_PORT, WOLF_HTTP_PORT
from gamevm_dev.simulators.tensordock import catalog
from gamevm_dev.simulators.tensordock.__main__ import main
from gamevm_dev.simulators.tensordock.store import VM, Store
from gamevm_dev.simulators.wolf import WolfResponder, WolfState

SHARED: dict[str, Any] = {}


def state_file(preload: Path, target: Path) -> None:
    """Write the simulator's state file for the preloaded instances."""
    rows = json.loads(preload.read_text())
    now = time.time()
    instances = []
    for row in rows:
        node = catalog.HOSTNODES_BY_ID[row["hostnode_id"]]
        vm = VM(
            id=row["id"],
            name=row["name"],
            status="running",
            hostnode_id=node.id,
            image="ubuntu2404",
            vcpus=2,
            ram_gb=4,
            storage_gb=100,
            gpu_model=None,
            gpu_count=0,
            dedicated_ip=True,
            forwards={SSH_PORT: 1, WOLF_HTTP_PORT: SHARED["port"]},
            price_per_hr=0.2,
            created_at=now,
        )
        instances.append(vm.to_json())
    target.write_text(json.dumps({"create_calls": 0, "instances": instances}))


async def shared_boot(self: Store, vm: VM) -> None:
    """Running at once, Wolf answered by the one shared responder."""
    if "wolf" not in SHARED:
        wolf = WolfResponder("tensordock-steady", state=WolfState.FREE)
        await wolf.start(SHARED["port"])
        SHARED["wolf"] = wolf
    vm.forwards[WOLF_HTTP_PORT] = SHARED["port"]
    vm.status = "running"


def take(argv: list[str], flag: str) -> tuple[str, list[str]]:
    at = argv.index(flag)
    return argv[at + 1], argv[:at] + argv[at + 2 :]


if __name__ == "__main__":
    preload, rest = take(sys.argv[1:], "--preload")
    port, rest = take(rest, "--wolf-port")
    SHARED["port"] = int(port)
    target = Path(preload).with_suffix(".state.json")
    state_file(Path(preload), target)
    Store._finish_boot = shared_boot  # type: ignore[method-assign]
    Store.save = lambda self: None  # type: ignore[method-assign]
    main([*rest, "--state-file", str(target)])
