"""Activity checks of running VMs are sparse far from the idle deadline, close near it, and
skipped while the VM's heartbeat is fresh; the idle stop still comes at its deadline.

Real API server, real operator process, the TensorDock simulator (its per-VM Wolf
responder counts the operator's /serverinfo probes).
"""

import asyncio
import base64
import json
import re
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.fixtures.operator_env import GameVMs, OperatorUnderTest
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e

INTERVAL = 2.0
"""GAMEVM_ACTIVITY_INTERVAL here: the cadence near the deadline."""
TIMEOUT = 24
"""autoStopTimeout (s): checks at about 12, 18, 21, 23 and 24.5 s after the last activity
(half the time left, at least INTERVAL apart, and one at the deadline itself)."""


@pytest.fixture
def sparse_operator(
    operator_starter: Callable[..., OperatorUnderTest],
) -> Callable[[float], OperatorUnderTest]:
    def start(max_interval: float) -> OperatorUnderTest:
        return operator_starter(
            {
                "GAMEVM_ACTIVITY_INTERVAL": str(INTERVAL),
                "GAMEVM_ACTIVITY_MAX_INTERVAL": str(max_interval),
            }
        )

    return start


def _instance(op: OperatorUnderTest, instance_id: str) -> dict[str, Any]:
    listing = asyncio.run(op.tensordock.instances())
    found: dict[str, Any] = next(i for i in listing["instances"] if i["id"] == instance_id)
    return found


def _probes(op: OperatorUnderTest, instance_id: str) -> int:
    """/serverinfo requests the VM's Wolf has answered so far."""
    return int(_instance(op, instance_id)["wolf_requests"])


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        (c for c in status.get("conditions", []) if c.get("type") == type_), {}
    )
    return found


def _since(moment: str) -> float:
    """Seconds from a status timestamp to now."""
    at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return (datetime.now(UTC) - at).total_seconds()


def _sleep_until(status_time: str, offset: float) -> None:
    """Sleep until `offset` seconds after a status timestamp."""
    time.sleep(max(0.0, offset - _since(status_time)))


def test_sparse_checks_still_stop_an_idle_vm_at_its_deadline(
    sparse_operator: Callable[[float], OperatorUnderTest], gamevms: GameVMs
) -> None:
    op = sparse_operator(300)
    gamevms.apply("sparse", autoStopTimeout=TIMEOUT)
    status = gamevms.wait_phase("sparse", "running")
    instance_id = status["providerInstanceId"]
    before = _probes(op, instance_id)
    status = gamevms.wait_phase("sparse", "stopped", timeout=TIMEOUT + 20)
    probes = _probes(op, instance_id) - before
    assert status["stopReason"] == "Idle"
    message = _cond(status, "AutoStopped")["message"]
    idle = int(re.search(r"no player activity for (\d+) s", message).group(1))  # type: ignore[union-attr]
    assert TIMEOUT <= idle <= TIMEOUT + 2, f"stopped {idle}s after the last activity"
    # Every INTERVAL would be 12 probes; half the time left is about 5.
    assert probes <= 8, f"{probes} probes in {TIMEOUT}s: not sparse"


def test_a_vm_busy_shortly_before_its_deadline_is_not_stopped(
    sparse_operator: Callable[[float], OperatorUnderTest], gamevms: GameVMs
) -> None:
    op = sparse_operator(300)
    gamevms.apply("late", autoStopTimeout=TIMEOUT)
    status = gamevms.wait_phase("late", "running")
    instance_id, last = status["providerInstanceId"], status["lastActivity"]
    # A short session shortly before the deadline, over before it: only checks that
    # come closer together near the deadline see it (the one at the deadline does not).
    _sleep_until(last, TIMEOUT - 9)
    asyncio.run(op.tensordock.set_wolf_state(instance_id, "busy"))
    _sleep_until(last, TIMEOUT - 2)
    asyncio.run(op.tensordock.set_wolf_state(instance_id, "free"))
    _sleep_until(last, TIMEOUT + 3)
    status = gamevms.status("late")
    assert status["phase"] == "running", f"stopped although busy: {status.get('message')}"
    assert status.get("lastMoonlightConnection")
    moved = _since(last) - _since(status["lastActivity"])
    assert moved >= TIMEOUT - 9, f"the session moved the last activity by only {moved:.1f}s"


def _heartbeat_token(kubectl: Kubectl, gamevms: GameVMs, name: str) -> str:
    secret = json.loads(
        kubectl("get", "secret", f"{name}-access", "-o", "json", namespace=gamevms.namespace).stdout
    )
    return base64.b64decode(secret["data"]["heartbeat-token"]).decode()


def _heartbeat(op: OperatorUnderTest, gamevms: GameVMs, name: str, token: str) -> None:
    url = f"http://127.0.0.1:{op.process.api_port}/v1/gamevms/{gamevms.namespace}/{name}/activity"
    request = urllib.request.Request(
        url, data=b"{}", headers={"Authorization": f"Bearer {token}"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200


def test_a_fresh_heartbeat_spares_the_probe(
    sparse_operator: Callable[[float], OperatorUnderTest], gamevms: GameVMs, kubectl: Kubectl
) -> None:
    # No idle deadline in sight: a check every 2 * INTERVAL.
    op = sparse_operator(2 * INTERVAL)
    gamevms.apply("beating", autoStopTimeout=3600)
    status = gamevms.wait_phase("beating", "running")
    instance_id = status["providerInstanceId"]
    token = _heartbeat_token(kubectl, gamevms, "beating")
    _heartbeat(op, gamevms, "beating", token)
    time.sleep(2 * INTERVAL + 1)  # a check that may have begun before the first heartbeat
    before = _probes(op, instance_id)
    until = time.monotonic() + 8 * INTERVAL  # 4 checks: 4 probes without heartbeats
    while time.monotonic() < until:
        _heartbeat(op, gamevms, "beating", token)
        time.sleep(0.5)
    during = _probes(op, instance_id) - before
    # One may slip through on a loaded machine (a heartbeat answered late is stale).
    assert during <= 1, f"{during} probes while the VM sent heartbeats"
    # Written at each check (4 s apart): without the heartbeats it would be 20 s old.
    assert _since(gamevms.status("beating")["lastActivity"]) < 4 * INTERVAL, (
        "the heartbeats are the VM's activity"
    )
    time.sleep(4 * INTERVAL)
    assert _probes(op, instance_id) > before, "probes resume once heartbeats stop"
    assert gamevms.status("beating")["phase"] == "running"
