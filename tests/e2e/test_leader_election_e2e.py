"""Two operator processes against one API server: one leads on the Lease, the other
waits; the leader SIGKILLed, the other takes over within the lease time, and at the
TensorDock simulator no VM has a second instance and no deletion is lost."""

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from gamevm.services.reconcile import instance_name
from tests.fixtures.chaos import report
from tests.fixtures.operator_env import GameVMs, OperatorUnderTest, start_operator
from tests.fixtures.service_proxy import ServiceProxy, service_proxy
from tests.fixtures.simulators import CloudyPadSimHandle, TensorDockSimHandle
from tests.fixtures.stack import Kubectl, OperatorProcess

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 4.0
ELECTION = {
    "GAMEVM_LEADER_ELECTION": "true",
    "GAMEVM_LEADER_LEASE_SECONDS": str(LEASE_SECONDS),
    "GAMEVM_LEADER_RENEW_DEADLINE_SECONDS": "3",
    "GAMEVM_LEADER_RETRY_SECONDS": "0.5",
}


def _instances_by_name(op: OperatorUnderTest) -> dict[str, list[dict[str, Any]]]:
    listing = asyncio.run(op.tensordock.instances())
    found: dict[str, list[dict[str, Any]]] = {}
    for instance in listing["instances"]:
        found.setdefault(str(instance.get("name")), []).append(instance)
    return found


def _uid(gamevms: GameVMs, name: str) -> str:
    body = gamevms.get(name)
    assert body is not None, name
    return str(body["metadata"]["uid"])


def test_leader_failover_no_double_instance_no_lost_deletion(
    kubectl: Kubectl,
    operator_ns: str,
    operator_process: Callable[..., OperatorProcess],
    tensordock_sim: TensorDockSimHandle,
    cloudypad_sim: CloudyPadSimHandle,
    gamevms: GameVMs,
) -> None:
    with service_proxy() as service:
        _failover(
            kubectl, operator_ns, operator_process, tensordock_sim, cloudypad_sim, gamevms, service
        )


def _failover(
    kubectl: Kubectl,
    operator_ns: str,
    operator_process: Callable[..., OperatorProcess],
    tensordock_sim: TensorDockSimHandle,
    cloudypad_sim: CloudyPadSimHandle,
    gamevms: GameVMs,
    service: ServiceProxy,
) -> None:
    def start(wait: bool) -> OperatorUnderTest:
        # Both replicas tell VMs the Service's address, as in a cluster: a VM created by
        # the leader that dies reports to whichever replica serves the API next.
        op = start_operator(
            kubectl,
            operator_ns,
            operator_process,
            tensordock_sim,
            cloudypad_sim,
            {**ELECTION, "GAMEVM_PUBLIC_URL": service.url},
            wait_started=wait,
        )
        service.backends.append(op.process.api_port)
        return op

    leader = start(wait=True)
    assert re.search(r"leader election: \S+ leads", leader.process.log_text())
    standby = start(wait=False)
    standby.process.wait_for_log(r"waits for Lease", timeout=30)

    gamevms.apply("keep", autoStopTimeout=1800)
    gamevms.apply("gone", autoStopTimeout=1800)
    gamevms.wait_phase("keep", "running", timeout=90)
    gamevms.wait_phase("gone", "running", timeout=90)
    time.sleep(2 * LEASE_SECONDS)
    assert "gamevm-operator started" not in standby.process.log_text(), (
        "the standby acted while the leader held the Lease"
    )

    # A new VM being created and a deletion in flight when the leader dies.
    gamevms.apply("fresh", autoStopTimeout=1800)
    gamevms.delete("gone")
    time.sleep(0.3)
    leader.process.kill()
    killed = time.monotonic()
    standby.process.wait_for_log(r"leader election: \S+ leads", timeout=30)
    takeover = time.monotonic() - killed
    standby.process.wait_for_log("gamevm-operator started", timeout=60)
    report(f"leader failover: standby leads {takeover:.1f}s after SIGKILL (lease {LEASE_SECONDS}s)")
    # Up to the lease, plus one retry period and slack for a loaded machine.
    assert takeover <= LEASE_SECONDS + 3.0, f"takeover took {takeover:.1f}s"

    gamevms.wait_phase("fresh", "running", timeout=90)
    gamevms.wait_gone("gone", timeout=90)
    gamevms.wait_phase("keep", "running", timeout=30)

    instances = _instances_by_name(leader)
    for name in ("keep", "fresh"):
        made = instances.get(instance_name(_uid(gamevms, name)), [])
        assert len(made) == 1, f"{name}: {len(made)} instances were created: {made}"
        assert not made[0].get("deleted"), f"{name}'s instance was deleted"
    lease = json.loads(
        kubectl("get", "lease", "gamevm-operator", "-o", "json", namespace=operator_ns).stdout
    )
    assert lease["spec"]["holderIdentity"] == standby.env.get(
        "GAMEVM_LEADER_IDENTITY", lease["spec"]["holderIdentity"]
    )
    assert lease["spec"]["holderIdentity"] in standby.process.log_text()
    gamevms.delete("keep")
    gamevms.delete("fresh")
    gamevms.wait_gone("keep", timeout=60)
    gamevms.wait_gone("fresh", timeout=60)
