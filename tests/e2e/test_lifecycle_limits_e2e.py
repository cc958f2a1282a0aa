"""Every billing state has a bound, and the admin's EmulatorConfig bounds the user's GameVM.

Real API server, real operator process, the TensorDock simulator: what bills is checked at
the simulator (a stopped or deleted instance no longer bills its hourly price).
Deadlines in minutes or hours are reached by moving the status clock back while the
operator is stopped (the restarted operator reads it from status), as a long night would.
"""

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from tests.fixtures.operator_env import (
    CREDENTIALS_SECRET,
    OPERATOR_NAMESPACE,
    GameVMs,
    OperatorUnderTest,
    premium_config,
    start_operator,
)
from tests.fixtures.simulators import CloudyPadSimHandle, TensorDockSimHandle
from tests.fixtures.stack import Kubectl, OperatorProcess

pytestmark = pytest.mark.e2e

BILLING = ("starting", "running")


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        (c for c in status.get("conditions", []) if c.get("type") == type_), {}
    )
    return found


def _instance(op: OperatorUnderTest, instance_id: str) -> dict[str, Any]:
    listing = asyncio.run(op.tensordock.instances())
    found: dict[str, Any] = next(i for i in listing["instances"] if i["id"] == instance_id)
    return found


def _live(op: OperatorUnderTest) -> list[dict[str, Any]]:
    listing = asyncio.run(op.tensordock.instances())
    return [i for i in listing["instances"] if not i.get("deleted")]


def _apply(kubectl: Kubectl, body: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(body))


def _move_status_back(
    op: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl, name: str, **fields: timedelta
) -> None:
    """Set status timestamps `ago` while the operator is down; it resumes from status."""
    op.process.stop()
    now = datetime.now(UTC)
    patch = {key: (now - ago).isoformat() for key, ago in fields.items()}
    kubectl(
        "patch",
        "gamevm",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": patch}),
        namespace=gamevms.namespace,
    )
    op.process.restart()


def test_silent_wolf_is_configuring_then_stopped_at_the_provisioning_deadline(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    _apply(kubectl, premium_config(maxProvisioningMinutes=1))
    asyncio.run(gamevm_operator.tensordock.set_faults({"wolf_silent": True}))
    gamevms.apply("silent", autoStopTimeout=3600)
    status = gamevms.wait_phase("silent", "configuring", timeout=60)
    # The configuring phase is reported, and Wolf's silence is not taken for running.
    time.sleep(2)
    status = gamevms.status("silent")
    assert status["phase"] == "configuring"
    assert status.get("gamingEnvironmentReady") is not True
    # The VM's user data waited for Wolf in vain and reported the failed step.
    assert _cond(status, "EnvironmentReady")["reason"] == "ConfigurationFailed"
    assert "failed steps: wolf" in status["message"]
    assert _cond(status, "Ready")["status"] == "False"
    instance_id = status["providerInstanceId"]
    assert _instance(gamevm_operator, instance_id)["status"] in BILLING

    _move_status_back(
        gamevm_operator, gamevms, kubectl, "silent", provisioningSince=timedelta(minutes=2)
    )
    status = gamevms.wait_phase("silent", "error", timeout=60)
    assert status["stopReason"] == "ProvisioningTimeout"
    assert _cond(status, "Ready")["reason"] == "ProvisioningTimeout"
    assert "maxProvisioningMinutes 1" in status["message"]
    # At the provider: the instance no longer bills.
    gamevms.wait(
        "silent",
        lambda _: _instance(gamevm_operator, instance_id)["status"] not in BILLING,
        timeout=30,
        what="instance stopped at the simulator",
    )
    warnings = [e for e in gamevms.events("silent") if e["reason"] == "ProvisioningTimeout"]
    assert warnings, gamevms.events("silent")
    assert warnings[0]["type"] == "Warning"
    # Held: it stays off.
    time.sleep(3)
    assert _instance(gamevm_operator, instance_id)["status"] not in BILLING
    assert gamevms.status("silent")["phase"] == "error"


def test_always_under_the_admin_session_cap_stops_at_the_cap(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    gamevms.apply("always", runStrategy="Always")
    status = gamevms.wait_phase("always", "running")
    instance_id = status["providerInstanceId"]
    asyncio.run(gamevm_operator.tensordock.set_wolf_state(instance_id, "busy"))
    _move_status_back(gamevm_operator, gamevms, kubectl, "always", startedAt=timedelta(hours=5))
    status = gamevms.wait_phase("always", "stopped", timeout=60)
    assert status["stopReason"] == "MaxSessionExceeded"
    assert _cond(status, "AutoStopped")["reason"] == "MaxSessionExceeded"
    time.sleep(3)
    assert gamevms.status("always")["phase"] == "stopped", "Always does not restart it"
    assert _instance(gamevm_operator, instance_id)["status"] not in BILLING


def test_a_future_last_activity_annotation_does_not_keep_a_vm_alive(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs
) -> None:
    gamevms.apply("liar", autoStopTimeout=3)
    status = gamevms.wait_phase("liar", "running")
    gamevms.annotate("liar", "gamevm.dev/last-activity=2099-01-01T00:00:00Z")
    status = gamevms.wait_phase("liar", "stopped", timeout=30)
    assert status["stopReason"] == "Idle"
    last = datetime.fromisoformat(status["lastActivity"].replace("Z", "+00:00"))
    assert last <= datetime.now(UTC)
    assert _instance(gamevm_operator, status["providerInstanceId"])["status"] not in BILLING


def test_what_the_config_forbids_is_not_provisioned(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    _apply(kubectl, premium_config(allowAlwaysRunStrategy=False))
    gamevms.apply("greedy", runStrategy="Always")
    gamevms.apply("leaver", deletionPolicy="Orphan")  # Orphan is not allowed by default
    for name, reason in (
        ("greedy", "RunStrategyNotAllowed"),
        ("leaver", "DeletionPolicyNotAllowed"),
    ):
        status = gamevms.wait(
            name,
            lambda s, r=reason: _cond(s, "Admitted").get("reason") == r,
            timeout=30,
            what=f"Admitted=False {reason}",
        )
        assert _cond(status, "Admitted")["status"] == "False"
        assert status["phase"] == "error"
        events = [e for e in gamevms.events(name) if e["reason"] == reason]
        assert events, gamevms.events(name)
        assert events[0]["type"] == "Warning"
    time.sleep(2)
    assert _live(gamevm_operator) == [], "nothing is provisioned against the policy"
    # The user complies: provisioning goes on and the condition recovers.
    gamevms.apply("greedy", runStrategy="Manual")
    status = gamevms.wait_phase("greedy", "running", timeout=60)
    assert _cond(status, "Admitted")["status"] == "True"


def test_no_path_creates_a_vm_above_its_cost_cap(
    kubectl: Kubectl,
    operator_ns: str,
    operator_process: Callable[..., OperatorProcess],
    tensordock_sim: TensorDockSimHandle,
    cloudypad_sim: CloudyPadSimHandle,
    gamevms: GameVMs,
) -> None:
    # No retries inside one provider call: a failed create comes back as a new step, which
    # takes the chosen offer again (from the offer cache).
    gamevm_operator = start_operator(
        kubectl,
        operator_ns,
        operator_process,
        tensordock_sim,
        cloudypad_sim,
        {"GAMEVM_HTTP_RETRIES": "0"},
    )
    retro_cap = 0.05
    _apply(
        kubectl,
        {
            "apiVersion": "gamevm.dev/v1alpha1",
            "kind": "EmulatorConfig",
            "metadata": {"name": "nes"},
            "spec": {
                "consoleType": "nes",
                "preferredProviders": [{"provider": "tensordock", "priority": 1}],
                "defaultPreset": "retro",
                "costPerHourLimit": retro_cap,
                "minCpu": 2,
                "minRamGb": 4,
                "requiresGpu": False,
                "maxSessionHours": 4,
            },
        },
    )
    try:
        dallas = {"latitude": 32.7767, "longitude": -96.7970}
        # A premium VM chooses a hostnode, but its creates fail (5xx, retried with backoff,
        # each retry taking the chosen offer again) until a retro VM has chosen the same
        # hostnode: when the premium VM's create goes through, both chosen offers are in
        # the offer cache. Each must get its own shape and price.
        failing = {"error_rate": 1.0, "methods": ["POST"], "paths": ["/instances"]}
        asyncio.run(gamevm_operator.tensordock.set_faults(failing))

        def chosen(status: dict[str, Any]) -> bool:
            return bool((status.get("decision") or {}).get("chosenPlacement"))

        gamevms.apply("big", userLocation=dallas)
        gamevms.wait("big", chosen, timeout=60, what="a placement chosen")
        small_vm = {
            "apiVersion": "gamevm.dev/v1alpha1",
            "kind": "GameVM",
            "metadata": {"name": "small", "namespace": gamevms.namespace},
            "spec": {"consoleType": "nes", "userLocation": dallas},
        }
        _apply(kubectl, small_vm)
        gamevms.wait("small", chosen, timeout=60, what="a placement chosen")
        time.sleep(3)  # creates in flight before the retro choice have failed by now
        asyncio.run(gamevm_operator.tensordock.set_faults({}))
        small = gamevms.wait("small", lambda s: bool(s.get("providerInstanceId")), timeout=60)
        big = gamevms.wait("big", lambda s: bool(s.get("providerInstanceId")), timeout=60)
        assert big["decision"]["chosenPlacement"] == small["decision"]["chosenPlacement"], (
            "both chose one hostnode (the case the offer cache once mixed up)"
        )
        retro = _instance(gamevm_operator, small["providerInstanceId"])
        premium = _instance(gamevm_operator, big["providerInstanceId"])
        assert retro["price_per_hr"] <= retro_cap, retro
        assert retro["gpu_model"] is None, retro
        assert premium["gpu_model"] is not None, premium
        assert premium["price_per_hr"] > retro_cap, premium
        for instance in _live(gamevm_operator):
            assert instance["price_per_hr"] <= 2.0, instance
    finally:
        kubectl("delete", "emulatorconfig", "nes", "--wait=false", check=False)


def test_events_come_from_gamevm_operator_and_it_never_writes_spec(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs
) -> None:
    gamevms.apply("owner", autoStopTimeout=1800)
    gamevms.wait_phase("owner", "running")
    gamevms.annotate("owner", "gamevm.dev/power-request=stop")
    gamevms.wait_phase("owner", "stopped")
    events = gamevms.events("owner")
    assert events
    for event in events:
        assert event["source"].get("component") == "gamevm-operator", event
        assert event.get("reportingComponent") == "gamevm-operator", event
    body = gamevms.get("owner", managed_fields=True)
    assert body is not None
    entries = body["metadata"]["managedFields"]
    # One entry per manager and subresource (the operator has one for status, and one for
    # the annotations it consumes): none of the operator's may own a spec field.
    assert "gamevm-operator" in {e["manager"] for e in entries}, entries
    for entry in entries:
        if entry["manager"].startswith("kubectl"):
            continue  # the user's own writes (apply, annotate)
        owned = entry.get("fieldsV1", {})
        assert "f:spec" not in owned, f"{entry['manager']} owns spec fields: {owned}"


def test_pause_stops_acting_and_synced_recovers(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs
) -> None:
    gamevms.apply("pausy", autoStopTimeout=1800)
    status = gamevms.wait_phase("pausy", "running")
    assert _cond(status, "Synced").get("status") == "True", status
    gamevms.annotate("pausy", "gamevm.dev/paused=true")
    gamevms.wait(
        "pausy",
        lambda s: _cond(s, "Synced").get("reason") == "ReconcilePaused",
        timeout=30,
        what="Synced=False ReconcilePaused",
    )
    gamevms.annotate("pausy", "gamevm.dev/power-request=stop")
    time.sleep(3)
    status = gamevms.status("pausy")
    assert status["phase"] == "running", "a paused VM is not acted on"
    assert _instance(gamevm_operator, status["providerInstanceId"])["status"] == "running"
    gamevms.annotate("pausy", "gamevm.dev/paused-")
    status = gamevms.wait_phase("pausy", "stopped", timeout=30)
    status = gamevms.wait(
        "pausy",
        lambda s: _cond(s, "Synced").get("status") == "True",
        timeout=30,
        what="Synced=True after the pause",
    )


def test_observed_generation_follows_spec_changes(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs
) -> None:
    gamevms.apply("gen", autoStopTimeout=1800)
    gamevms.wait_phase("gen", "running")
    gamevms.apply("gen", autoStopTimeout=1700)
    body = gamevms.get("gen") or {}
    generation = body["metadata"]["generation"]
    assert generation >= 2
    gamevms.wait(
        "gen",
        lambda s: s.get("observedGeneration") == generation,
        timeout=30,
        what=f"observedGeneration {generation}",
    )


def test_without_an_access_key_nothing_is_provisioned(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    gamevm_operator.process.stop()
    kubectl(
        "patch",
        "secret",
        CREDENTIALS_SECRET,
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/data/access-master-key"}]),
        namespace=OPERATOR_NAMESPACE,
    )
    gamevm_operator.process.restart()
    gamevm_operator.process.wait_for_log("gamevm-operator started", timeout=60)
    gamevms.apply("keyless")
    status = gamevms.wait(
        "keyless",
        lambda s: _cond(s, "Ready").get("reason") == "AccessKeyMissing",
        timeout=60,
        what="Ready=False AccessKeyMissing",
    )
    assert status["phase"] == "error"
    assert status.get("observedGeneration") == 1
    time.sleep(2)
    assert _live(gamevm_operator) == []
    warnings = [e for e in gamevms.events("keyless") if e["reason"] == "AccessKeyMissing"]
    assert len(warnings) == 1, warnings
