"""The Wolf probe guard through the whole operator: a VM whose provider reports a
non-public address is never probed; it stays configuring with a condition and an Event."""

from collections.abc import Callable

import pytest

from tests.fixtures.operator_env import GameVMs, start_operator
from tests.fixtures.simulators import CloudyPadSimHandle, TensorDockSimHandle
from tests.fixtures.stack import Kubectl, OperatorProcess

pytestmark = pytest.mark.e2e


def test_a_non_public_wolf_address_is_refused(
    kubectl: Kubectl,
    operator_ns: str,
    operator_process: Callable[..., OperatorProcess],
    tensordock_sim: TensorDockSimHandle,
    cloudypad_sim: CloudyPadSimHandle,
    gamevms: GameVMs,
) -> None:
    # As in a cluster: loopback refused like every private address (the simulated VM
    # reports 127.0.0.1).
    start_operator(
        kubectl,
        operator_ns,
        operator_process,
        tensordock_sim,
        cloudypad_sim,
        {"GAMEVM_WOLF_PROBE_ALLOW_LOOPBACK": "false"},
    )
    gamevms.apply("guarded", autoStopTimeout=1800)

    def refused(status: dict[str, object]) -> bool:
        conditions = status.get("conditions") or []
        assert isinstance(conditions, list)
        return any(c.get("reason") == "UnsafeWolfAddress" for c in conditions)

    status = gamevms.wait(
        "guarded", refused, timeout=60, what="EnvironmentReady=False UnsafeWolfAddress"
    )
    assert status["phase"] == "configuring"
    assert status.get("gamingEnvironmentReady") is not True
    assert "loopback" in status["message"]
    warnings = [e for e in gamevms.events("guarded") if e["reason"] == "UnsafeWolfAddress"]
    assert warnings
    assert warnings[0]["type"] == "Warning"
    gamevms.delete("guarded")
    gamevms.wait_gone("guarded", timeout=60)
