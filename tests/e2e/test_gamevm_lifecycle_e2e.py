"""The operator end to end: real API server, real operator process, provider simulators."""

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from gamevm.models import PRESET_RESOURCES, CloudProvider, VMPreset
from gamevm.providers.base import CreateSpec, OfferRequest
from gamevm.providers.credentials import TENSORDOCK_TOKEN
from gamevm.providers.registry import build_provider
from gamevm.services.reconcile import instance_name
from gamevm.settings import Settings
from tests.fixtures.operator_env import GameVMs, OperatorUnderTest, premium_config
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e


def _cond(status: dict[str, object], type_: str) -> dict[str, object]:
    conditions = status.get("conditions", [])
    assert isinstance(conditions, list)
    return next((c for c in conditions if c.get("type") == type_), {})


async def _live_instances(op: OperatorUnderTest) -> list[dict[str, object]]:
    listing = await op.tensordock.instances()
    return [i for i in listing["instances"] if not i.get("deleted")]


def test_create_to_running_and_delete(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    gamevms.apply(
        "mario",
        gameId="mario-odyssey",
        userId="user123",
        userLocation={"latitude": 32.7767, "longitude": -96.7970},
        autoStopTimeout=1800,
    )
    status = gamevms.wait_phase("mario", "running", timeout=60)
    assert status["provider"] == "tensordock"
    # The VM's dedicated (loopback) IP, as its configuration report came from it.
    assert status["ipAddress"] == status["configuration"]["address"]
    assert status["ipAddress"].startswith("127.")
    assert status["providerInstanceId"]
    assert status["gamingEnvironmentReady"] is True
    # Running because the operator's own user data installed Wolf and the VM said so.
    assert status["configuration"]["ready"] is True
    assert status["cloudypadConfigured"] is False
    assert status["gamesMounted"] is False
    (vm,) = asyncio.run(_live_instances(gamevm_operator))
    assert vm["wolf_installed"] is True, "the simulator saw the Wolf setup in the user data"
    assert vm["report"] == "sent 200", "the VM's report reached the operator"
    assert status["wolfPort"] == 47999
    assert status["preset"] == "premium"
    chosen = next(c for c in status["decision"]["candidates"] if c["accepted"])
    assert chosen["distanceKm"] < 50, "a Dallas player gets the Dallas hostnode"
    assert _cond(status, "Ready")["status"] == "True"
    assert _cond(status, "Provisioned")["status"] == "True"
    assert status["decision"]["candidates"], "the decision lists the candidates"

    table = kubectl("get", "gamevms", namespace=gamevms.namespace).stdout
    for column in ("CONSOLE", "PRESET", "PROVIDER", "PHASE", "IP", "AGE"):
        assert column in table
    assert "running" in table
    wide = kubectl("get", "gvm", "-o", "wide", namespace=gamevms.namespace).stdout
    for column in ("REGION", "COST/H", "LAST ACTIVITY"):
        assert column in wide

    events = gamevms.events("mario")
    assert "Running" in {e["reason"] for e in events}
    # Back-to-back steps share one Event; together they tell the choice and the instance.
    story = " ".join(e["message"] for e in events)
    assert "USD/h" in story
    assert status["providerInstanceId"] in story

    secret = json.loads(
        kubectl("get", "secret", "mario-access", "-o", "json", namespace=gamevms.namespace).stdout
    )
    assert set(secret["data"]) == {"ssh-privatekey", "ssh-publickey", "heartbeat-token"}
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "GameVM"

    assert len(asyncio.run(_live_instances(gamevm_operator))) == 1
    gamevms.delete("mario")
    gamevms.wait_gone("mario", timeout=60)
    assert asyncio.run(_live_instances(gamevm_operator)) == []


def test_idle_auto_stop_busy_keeps_running_and_power_requests(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs
) -> None:
    gamevms.apply("idle", autoStopTimeout=4)
    status = gamevms.wait_phase("idle", "running")
    instance_id = status["providerInstanceId"]
    asyncio.run(gamevm_operator.tensordock.set_wolf_state(instance_id, "busy"))
    time.sleep(6)
    status = gamevms.status("idle")
    assert status["phase"] == "running", "a BUSY Wolf counts as activity"
    assert status.get("lastMoonlightConnection")
    asyncio.run(gamevm_operator.tensordock.set_wolf_state(instance_id, "free"))
    started = time.monotonic()
    status = gamevms.wait_phase("idle", "stopped", timeout=20)
    elapsed = time.monotonic() - started
    assert status["stopReason"] == "Idle"
    assert _cond(status, "AutoStopped")["status"] == "True"
    assert elapsed <= 4 + 1 + 2, f"stopped {elapsed:.1f}s after the last activity"
    assert "AutoStopped" in {e["reason"] for e in gamevms.events("idle")}

    gamevms.annotate("idle", "gamevm.dev/power-request=start")
    gamevms.wait_phase("idle", "running")
    annotations = (gamevms.get("idle") or {})["metadata"].get("annotations", {})
    assert "gamevm.dev/power-request" not in annotations, "the request is consumed"


def test_halted_and_always(gamevm_operator: OperatorUnderTest, gamevms: GameVMs) -> None:
    gamevms.apply("power", autoStopTimeout=2, runStrategy="Always")
    gamevms.wait_phase("power", "running")
    time.sleep(4)
    assert gamevms.status("power")["phase"] == "running", "Always never auto-stops"
    gamevms.apply("power", autoStopTimeout=2, runStrategy="Halted")
    status = gamevms.wait_phase("power", "stopped")
    assert status["stopReason"] == "RunStrategyHalted"
    gamevms.apply("power", autoStopTimeout=2, runStrategy="Always")
    gamevms.wait_phase("power", "running")


def test_orphan_keeps_the_instance(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    # Orphan leaves a billing instance: only where the admin allows it.
    allowing = premium_config(allowOrphanDeletionPolicy=True)
    kubectl("apply", "-f", "-", input=yaml.safe_dump(allowing))
    gamevms.apply("orphan", deletionPolicy="Orphan")
    gamevms.wait_phase("orphan", "running")
    gamevms.delete("orphan")
    gamevms.wait_gone("orphan")
    assert len(asyncio.run(_live_instances(gamevm_operator))) == 1


def test_sigkill_during_creating_makes_one_instance(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs
) -> None:
    asyncio.run(gamevm_operator.tensordock.set_faults({"latency_ms": 1500}))
    gamevms.apply("crash")
    gamevms.wait_phase("crash", "creating", timeout=30)
    time.sleep(1.0)  # the create request is in flight
    gamevm_operator.process.kill()
    asyncio.run(gamevm_operator.tensordock.set_faults({}))
    gamevm_operator.process.restart()
    status = gamevms.wait_phase("crash", "running", timeout=60)
    live = asyncio.run(_live_instances(gamevm_operator))
    assert len(live) == 1, live
    assert live[0]["id"] == status["providerInstanceId"]


def test_provider_outage_during_delete_keeps_the_finalizer(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs
) -> None:
    gamevms.apply("outage")
    gamevms.wait_phase("outage", "running")
    asyncio.run(gamevm_operator.tensordock.set_faults({"error_rate": 1.0}))
    gamevms.delete("outage")
    time.sleep(4)
    body = gamevms.get("outage")
    assert body is not None, "the finalizer holds the object while the provider is down"
    assert body["metadata"].get("deletionTimestamp")
    assert len(asyncio.run(_live_instances(gamevm_operator))) == 1
    asyncio.run(gamevm_operator.tensordock.set_faults({}))
    gamevms.wait_gone("outage", timeout=60)
    assert asyncio.run(_live_instances(gamevm_operator)) == []


def test_emulatorconfig_edit_changes_the_next_choice(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    gamevms.apply("first")
    assert gamevms.wait_phase("first", "running")["provider"] == "tensordock"
    config = premium_config()
    config["spec"]["preferredProviders"][0]["enabled"] = False
    kubectl("apply", "-f", "-", input=yaml.safe_dump(config))
    try:
        gamevms.apply("second")
        status = gamevms.wait_phase("second", "running", timeout=90)
        assert status["provider"] == "cloudypad_gcp"
        assert any(
            c["provider"] == "tensordock" and c["reason"] == "Disabled"
            for c in status["decision"]["candidates"]
        )
    finally:
        kubectl("apply", "-f", "-", input=yaml.safe_dump(premium_config()))
        gamevms.delete("second")
        gamevms.wait_gone("second", timeout=90)
    assert gamevm_operator.cloudypad.wolf_pids() == []


def test_max_session_stops_a_busy_vm(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    gamevms.apply("marathon", autoStopTimeout=3600)
    status = gamevms.wait_phase("marathon", "running")
    asyncio.run(gamevm_operator.tensordock.set_wolf_state(status["providerInstanceId"], "busy"))
    # A session that began 5 hours ago (the config allows 4): moved back while the operator
    # is down, as after a long night; the restarted operator reads it from status.
    gamevm_operator.process.stop()
    five_hours_ago = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    kubectl(
        "patch",
        "gamevm",
        "marathon",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"startedAt": five_hours_ago}}),
        namespace=gamevms.namespace,
    )
    gamevm_operator.process.restart()
    status = gamevms.wait_phase("marathon", "stopped", timeout=30)
    assert status["stopReason"] == "MaxSessionExceeded"
    assert _cond(status, "AutoStopped")["reason"] == "MaxSessionExceeded"
    messages = [e["message"] for e in gamevms.events("marathon") if e["reason"] == "AutoStopped"]
    assert any("maximum is 4 h" in m for m in messages), messages


async def _create_plain_instance(op: OperatorUnderTest, name: str) -> str:
    """An instance of the GameVM's deterministic name WITHOUT the Wolf setup (as an older
    operator, or a person, might have left it); the operator adopts it at create."""
    provider = build_provider(
        CloudProvider.TENSORDOCK,
        Settings.model_validate({"tensordock_api_url": op.tensordock.base_url}),
        {TENSORDOCK_TOKEN: op.tensordock.token},
    )
    try:
        preset = VMPreset.PREMIUM
        offers = await provider.offers(
            OfferRequest(preset=preset, resources=PRESET_RESOURCES[preset])
        )
        offer = next(o for o in offers if o.location_label.startswith("Dallas") and o.available)
        created = await provider.create(
            CreateSpec(name=name, preset=preset, offer=offer, ssh_public_key="ssh-ed25519 AAAA x")
        )
        return created.instance_id
    finally:
        await provider.aclose()


def test_a_vm_without_the_wolf_setup_stays_configuring(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    gamevms.apply(
        "plain", runStrategy="Halted", userLocation={"latitude": 32.78, "longitude": -96.8}
    )
    gamevms.wait_phase("plain", "stopped")
    uid = (gamevms.get("plain") or {})["metadata"]["uid"]
    plain_id = asyncio.run(_create_plain_instance(gamevm_operator, instance_name(uid)))
    # The operator's shared instance list is refreshed once per interval: wait for one
    # that can show the instance made behind its back.
    time.sleep(float(Settings.model_fields["provider_list_interval"].default) + 1)
    gamevms.apply(
        "plain", runStrategy="Always", userLocation={"latitude": 32.78, "longitude": -96.8}
    )
    status = gamevms.wait_phase("plain", "configuring", timeout=60)
    assert status["providerInstanceId"] == plain_id, "the existing instance was adopted"
    time.sleep(5)
    status = gamevms.status("plain")
    assert status["phase"] == "configuring", "no Wolf, no report: never running"
    assert status["gamingEnvironmentReady"] is False
    assert "configuration" not in status
    assert _cond(status, "Ready")["reason"] == "AwaitingConfiguration"
    live = asyncio.run(_live_instances(gamevm_operator))
    assert [i["id"] for i in live] == [plain_id], "adopted, never a second instance"
    assert live[0]["wolf_port"] is None

    # The report endpoint: only this VM's token, only a well-formed body.
    secret = json.loads(
        kubectl("get", "secret", "plain-access", "-o", "json", namespace=gamevms.namespace).stdout
    )
    token = base64.b64decode(secret["data"]["heartbeat-token"]).decode()
    url = (
        f"http://127.0.0.1:{gamevm_operator.process.api_port}"
        f"/v1/gamevms/{gamevms.namespace}/plain/configuration"
    )
    report = {"gamingEnvironmentReady": True, "gamesMounted": True, "message": "by hand"}
    assert _post(url, None, report)[0] == 401
    assert _post(url, "wrong-token", report)[0] == 401
    assert _post(url, token, {"gamingEnvironmentReady": "yes", "gamesMounted": True})[0] == 400
    # Paused, the VM's daemon writes nothing: what lands in status was stored by the
    # endpoint itself, before it answered (an operator restart cannot lose the report).
    gamevms.annotate("plain", "gamevm.dev/paused=true")
    gamevms.wait(
        "plain",
        lambda s: _cond(s, "Synced").get("reason") == "ReconcilePaused",
        timeout=30,
        what="paused",
    )
    assert _post(url, token, report)[0] == 200
    status = gamevms.wait(
        "plain", lambda s: "configuration" in s, timeout=10, what="configuration stored"
    )
    assert status["configuration"]["ready"] is True
    gamevms.annotate("plain", "gamevm.dev/paused-")
    # A report alone is not running: Wolf must answer too, and on this VM nothing does.
    status = gamevms.wait(
        "plain",
        lambda s: _cond(s, "EnvironmentReady").get("reason") == "WolfNotAnswering",
        timeout=30,
        what="waiting for Wolf",
    )
    assert status["phase"] == "configuring"
    assert status["gamesMounted"] is True, "as reported"
    assert token not in json.dumps(status)


def _post(url: str, token: str | None, body: object) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 - loopback http
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
