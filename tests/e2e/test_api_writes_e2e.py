"""API writes of a GameVM, counted by the real API server (`apiserver_request_total`).

The operator here watches only the test's namespace, so every GameVM status patch and
Event the API server counts is one of this test's. The write budget at scale is a
benchmark figure (bench/README.md); these tests pin what must never be written.
"""

import json
import time
from collections import Counter
from collections.abc import Callable

import pytest

from bench.apimetrics import WriteKey, parse_request_totals, write_counts
from tests.fixtures.operator_env import GameVMs, OperatorUnderTest
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e

ACTIVITY_INTERVAL = 1.0
"""GAMEVM_ACTIVITY_INTERVAL of `start_operator`: how often a running VM is looked at."""

STATUS_PATCH: WriteKey = ("PATCH", "gamevms", "status")
EVENT_POST: WriteKey = ("POST", "events", "")


@pytest.fixture
def own_operator(
    operator_starter: Callable[..., OperatorUnderTest], namespace: str
) -> OperatorUnderTest:
    """The operator, fast intervals, watching only this test's namespace."""
    return operator_starter({"GAMEVM_WATCH_NAMESPACES": json.dumps([namespace])})


def _writes(kubectl: Kubectl) -> Counter[WriteKey]:
    return write_counts(parse_request_totals(kubectl("get", "--raw", "/metrics").stdout))


def _writes_during(kubectl: Kubectl, seconds: float) -> Counter[WriteKey]:
    before = _writes(kubectl)
    time.sleep(seconds)
    after = _writes(kubectl)
    return Counter({k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)})


def test_a_running_vm_is_not_rewritten_while_nothing_changes(
    own_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    gamevms.apply("quiet", autoStopTimeout=3600)
    gamevms.wait_phase("quiet", "running")
    time.sleep(2 * ACTIVITY_INTERVAL)  # Events still queued in kopf are posted
    # Three activity checks, each observing the instance and probing Wolf: no write, not
    # even a patch that changes nothing (the API server counts it all the same).
    idle = _writes_during(kubectl, 3.5 * ACTIVITY_INTERVAL)
    assert idle[STATUS_PATCH] == 0, f"status patched while nothing changed: {idle}"
    assert idle[EVENT_POST] == 0, f"Events posted while nothing happened: {idle}"

    # A restarted operator knows nothing of what it wrote: it takes it from the object
    # and writes nothing either (at 10,000 running VMs that is 10,000 writes at start).
    own_operator.process.restart()
    own_operator.process.wait_for_log("gamevm-operator started", timeout=60)
    restarted = _writes_during(kubectl, 3.5 * ACTIVITY_INTERVAL)
    assert restarted[STATUS_PATCH] == 0, f"status rewritten after a restart: {restarted}"
    assert restarted[EVENT_POST] == 0, f"Events posted after a restart: {restarted}"
    assert gamevms.status("quiet")["phase"] == "running"


def test_the_way_to_running_takes_six_writes(
    own_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    """Create, finalizer, access Secret, the choice (in status before any create: where
    a restarted operator finds the instance), running (instance, configuration report and
    phase in one patch) and one `Running` Event that tells the whole story."""
    before = _writes(kubectl)
    gamevms.apply("six", autoStopTimeout=3600)
    status = gamevms.wait_phase("six", "running")
    time.sleep(2 * ACTIVITY_INTERVAL)  # Events still queued in kopf are posted
    after = _writes(kubectl)
    # Writes for this GameVM (other namespaces being deleted show as DELETEs; the
    # EmulatorConfig's status is the console's, not the VM's).
    writes = {
        k: after[k] - before.get(k, 0)
        for k in after
        if after[k] > before.get(k, 0)
        and k[0] in ("POST", "PATCH", "PUT")
        and k[1] in ("gamevms", "secrets", "events")
    }
    assert writes == {
        ("POST", "gamevms", ""): 1,
        ("PATCH", "gamevms", ""): 1,
        ("POST", "secrets", ""): 1,
        STATUS_PATCH: 2,
        EVENT_POST: 1,
    }, writes
    assert status["configuration"]["ready"] is True, "the VM's report is in status"
    (event,) = gamevms.events("six")
    assert (event["type"], event["reason"]) == ("Normal", "Running")
    for told in ("USD/h", status["providerInstanceId"], "Wolf answers"):
        assert told in event["message"], event["message"]
