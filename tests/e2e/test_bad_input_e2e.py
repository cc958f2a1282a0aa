"""Bad input end to end.

1. Every manifest in `tests/e2e/bad_input/` is applied to the real API server with
   `kubectl apply --validate=strict` (server-side field validation Strict: unknown fields
   are rejected, not pruned). Each must be rejected by the server with a message naming
   its field; none may be accepted. One test id per manifest.
2. Input only the operator can judge, with the operator running against the simulators:
   a console without an EmulatorConfig, an invalid power-request annotation (one operator
   run), and a provider whose key is missing from the credentials Secret (operator
   restarted without it). Each gets a condition and/or Event; the operator keeps running.

Runtime: the manifests are applied once per module, concurrently (one kubectl call
each; the stack is never restarted); the parametrized tests only read the outcomes.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from gamevm.models.enums import ConsoleType
from gamevm.models.names import ANNOTATION_POWER_REQUEST
from gamevm.providers.credentials import TENSORDOCK_TOKEN
from tests.e2e.bad_input.catalog import BadManifest, load_all, parse, valid_manifest
from tests.fixtures.operator_env import (
    CREDENTIALS_SECRET,
    GameVMs,
    OperatorUnderTest,
    credentials_secret,
    premium_config,
)
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e

CASES = load_all()
CONSOLES = {c.value for c in ConsoleType}
PARALLEL_APPLIES = 8

# Consoles whose EmulatorConfig the operator tests remove (and restore afterwards).
NO_CONFIG_CONSOLE = "nes"
NO_CREDENTIALS_CONSOLE = "gb"


@dataclass(frozen=True)
class Outcome:
    """What `kubectl apply` said about one manifest."""

    returncode: int
    stdout: str
    stderr: str
    setup_error: str | None = None


def _console_names(cases: Iterable[BadManifest]) -> set[str]:
    """EmulatorConfig names the cases (or their set-up) would create."""
    names = {str(valid_manifest("EmulatorConfig")["metadata"]["name"])}
    for case in cases:
        for doc in (*case.setup_docs, case.doc):
            name = doc.get("metadata", {}).get("name")
            if doc.get("kind") == "EmulatorConfig" and name in CONSOLES:
                names.add(str(name))
    return names


@contextmanager
def consoles_without_config(kubectl: Kubectl, names: Iterable[str]) -> Iterator[None]:
    """Remove these consoles' EmulatorConfigs (cluster-scoped, shared) and put them back.

    Applying a case to an existing object would be an update (a three-way merge that can
    keep fields the case omits), so every EmulatorConfig case must take the create path.
    """
    saved: list[dict[str, Any]] = []
    for name in sorted(names):
        got = kubectl("get", "emulatorconfig", name, "-o=json", "--ignore-not-found")
        if got.stdout.strip():
            saved.append(_restorable(json.loads(got.stdout)))
            kubectl("delete", "emulatorconfig", name, "--wait=true")
    try:
        yield
    finally:
        for name in sorted(names):
            kubectl("delete", "emulatorconfig", name, "--ignore-not-found", check=False)
        for doc in saved:
            kubectl("create", "-f", "-", input=json.dumps(doc), check=False)


def _restorable(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc["metadata"]
    keep = ("name", "labels", "annotations")
    return {
        "apiVersion": doc["apiVersion"],
        "kind": doc["kind"],
        "metadata": {k: meta[k] for k in keep if k in meta},
        "spec": doc["spec"],
    }


# kubectl's strict validation asks the server for fieldValidation=Strict: unknown fields
# are rejected by the API server instead of being dropped.
APPLY = ("apply", "--validate=strict")
DELETE = ("delete", "--ignore-not-found", "--wait=false")


def _kubectl_doc(
    kubectl: Kubectl, text: str, namespace: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl <args> -f -` for one document (in `namespace` when it is namespaced)."""
    namespaced = parse(text).get("kind") == "GameVM"
    return kubectl(
        *args, "-f", "-", namespace=namespace if namespaced else None, input=text, check=False
    )


def _run_case(kubectl: Kubectl, namespace: str, case: BadManifest) -> Outcome:
    for text in case.setup:
        setup = _kubectl_doc(kubectl, text, namespace, *APPLY)
        if setup.returncode != 0:
            return Outcome(setup.returncode, setup.stdout, setup.stderr, setup.stderr)
    result = _kubectl_doc(kubectl, case.text, namespace, *APPLY)
    leftovers = [*case.setup, case.text] if result.returncode == 0 else list(case.setup)
    for text in leftovers:  # an accepted case must not leak into the next one
        _kubectl_doc(kubectl, text, namespace, *DELETE)
    return Outcome(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def bad_input_namespace(kubectl: Kubectl) -> Iterator[str]:
    """One namespace for all cases (a rejected object creates nothing in it)."""
    name = f"t-bad-input-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def outcomes(kubectl: Kubectl, bad_input_namespace: str) -> dict[str, Outcome]:
    """Case id -> outcome, for every case and for the two valid objects (`valid/<kind>`)."""
    results: dict[str, Outcome] = {}
    with consoles_without_config(kubectl, _console_names(CASES)):
        # Valid objects first, dry-run: guards against cases rejected for another reason.
        for kind in ("GameVM", "EmulatorConfig"):
            text = yaml.safe_dump(valid_manifest(kind))
            done = _kubectl_doc(kubectl, text, bad_input_namespace, *APPLY, "--dry-run=server")
            results[f"valid/{kind}"] = Outcome(done.returncode, done.stdout, done.stderr)
        # Single-document cases concurrently; cases with set-up one at a time (they create
        # objects other EmulatorConfig cases would otherwise see).
        simple = [c for c in CASES if not c.setup]
        with ThreadPoolExecutor(PARALLEL_APPLIES) as pool:
            for case, outcome in zip(
                simple,
                pool.map(lambda c: _run_case(kubectl, bad_input_namespace, c), simple),
                strict=True,
            ):
                results[case.id] = outcome
        for case in (c for c in CASES if c.setup):
            results[case.id] = _run_case(kubectl, bad_input_namespace, case)
    return results


def test_catalogue_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40, len(CASES)
    assert {c.kind for c in CASES} == {"GameVM", "EmulatorConfig"}


@pytest.mark.parametrize("kind", ["GameVM", "EmulatorConfig"])
def test_valid_object_is_accepted(outcomes: dict[str, Outcome], kind: str) -> None:
    outcome = outcomes[f"valid/{kind}"]
    assert outcome.returncode == 0, outcome.stderr


# Rules on the whole object are reported at a field: the EmulatorConfig name rule carries
# `fieldPath: .spec.consoleType`; the GameVM name limit is `metadata.name` maxLength 63.
ROOT_RULE_CASES = [
    "emulatorconfig-name-64-chars",
    "emulatorconfig-name-not-console",
    "emulatorconfig-update-console-type",
    "gamevm-name-64-chars",
]


def names_field(stderr: str, field: str) -> bool:
    """Whether `field` is the path of an error (`spec.x: Invalid value`, `spec.x[0]...`,
    `unknown field "spec.x"`), not just a word somewhere in a message."""
    pattern = rf'(?:^|[\s*"]){re.escape(field)}(?:: |[\[".])'
    return re.search(pattern, stderr, re.MULTILINE) is not None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_manifest_is_rejected(outcomes: dict[str, Outcome], case: BadManifest) -> None:
    outcome = outcomes[case.id]
    assert outcome.setup_error is None, f"set-up of {case.id} failed: {outcome.setup_error}"
    assert outcome.returncode != 0, (
        f"ACCEPTED by the API server (schema bug): {case.why}\n{outcome.stdout}"
    )
    # kubectl prints a 422 as 'The GameVM "x" is invalid: ...', a 400 as 'Error from server'.
    assert "Error from server" in outcome.stderr or " is invalid: " in outcome.stderr, (
        f"not a server rejection: {outcome.stderr}"
    )
    if case.id in ROOT_RULE_CASES:
        assert case.field in outcome.stderr, f"{case.field!r} not named: {outcome.stderr}"
    else:
        assert names_field(outcome.stderr, case.field), (
            f"{case.field!r} is not the path of an error: {outcome.stderr}"
        )
    for text in case.also:
        assert text in outcome.stderr, f"{text!r} not in: {outcome.stderr}"


@pytest.mark.parametrize("case_id", ROOT_RULE_CASES)
def test_root_rule_rejection_has_a_field_path(outcomes: dict[str, Outcome], case_id: str) -> None:
    assert '<nil>: Invalid value: "object"' not in outcomes[case_id].stderr


# ---------------------------------------------------------------------------------------
# Input only the operator can judge.


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = status.get("conditions", [])
    return next((c for c in conditions if c.get("type") == type_), {})


def _ready_reason(reason: str) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        ready = _condition(status, "Ready")
        return ready.get("status") == "False" and ready.get("reason") == reason

    return check


def _events(gamevms: GameVMs, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in gamevms.events(name) if e["reason"] == reason]


def _event_count(events: list[dict[str, Any]]) -> int:
    return sum(e.get("count") or 1 for e in events)


def _wait_event(gamevms: GameVMs, name: str, reason: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        events = gamevms.events(name)
        seen = {e["reason"] for e in events}
        for event in events:
            if event["reason"] == reason:
                return event
        time.sleep(0.2)
    pytest.fail(f"no {reason} Event for GameVM {name} in {timeout}s; Events: {sorted(seen)}")


def _assert_operator_healthy(op: OperatorUnderTest, pid: int) -> None:
    assert op.process.running(), f"operator exited ({op.process.exit_code()})"
    assert op.process.pid == pid, "the operator was restarted"
    log = op.process.log_text()
    assert "Traceback" not in log, log[-3000:]


def _resource_version(gamevms: GameVMs, name: str) -> str:
    return str((gamevms.get(name) or {})["metadata"]["resourceVersion"])


async def _live_instances(op: OperatorUnderTest) -> list[dict[str, Any]]:
    listing = await op.tensordock.instances()
    return [i for i in listing["instances"] if not i.get("deleted")]


def test_missing_config_and_invalid_power_request(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    """One operator run, two VMs: a console without EmulatorConfig (Ready=False
    EmulatorConfigMissing, recovers once the config exists) and a running VM given an
    invalid power request (Warning InvalidPowerRequest, annotation consumed, no change)."""
    pid = gamevm_operator.process.pid
    with consoles_without_config(kubectl, [NO_CONFIG_CONSOLE]):
        gamevms.apply("no-config", consoleType=NO_CONFIG_CONSOLE)
        gamevms.apply("power-typo")
        status = gamevms.wait(
            "no-config", _ready_reason("EmulatorConfigMissing"), 20, "EmulatorConfigMissing"
        )
        assert NO_CONFIG_CONSOLE in _condition(status, "Ready")["message"]
        assert "providerInstanceId" not in status, "nothing is created without a config"

        gamevms.wait_phase("power-typo", "running", timeout=30)
        gamevms.annotate("power-typo", f"{ANNOTATION_POWER_REQUEST}=reboot")
        event = _wait_event(gamevms, "power-typo", "InvalidPowerRequest")
        assert event["type"] == "Warning"
        assert "reboot" in event["message"], event["message"]
        _wait_annotation_gone(gamevms, "power-typo", ANNOTATION_POWER_REQUEST)
        assert gamevms.status("power-typo")["phase"] == "running", "the request changed nothing"
        _assert_operator_healthy(gamevm_operator, pid)

        # Not stuck: once the config exists the VM is provisioned.
        kubectl("apply", "-f", "-", input=yaml.safe_dump(premium_config(NO_CONFIG_CONSOLE)))
        gamevms.wait_phase("no-config", "running", timeout=30)
        missing = _events(gamevms, "no-config", "EmulatorConfigMissing")
        for name in ("no-config", "power-typo"):
            gamevms.delete(name)
        for name in ("no-config", "power-typo"):
            gamevms.wait_gone(name, timeout=30)
    _assert_operator_healthy(gamevm_operator, pid)
    assert missing, "an EmulatorConfigMissing Event explains the wait"
    assert missing[0]["type"] == "Warning"
    assert NO_CONFIG_CONSOLE in missing[0]["message"]


def _wait_annotation_gone(gamevms: GameVMs, name: str, key: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    annotations: dict[str, str] = {}
    while time.monotonic() < deadline:
        annotations = (gamevms.get(name) or {})["metadata"].get("annotations", {})
        if key not in annotations:
            return
        time.sleep(0.2)
    pytest.fail(f"{key} still on GameVM {name} after {timeout}s: {annotations}")


@pytest.fixture
def tensordock_token_removed(
    gamevm_operator: OperatorUnderTest, kubectl: Kubectl, operator_ns: str
) -> Iterator[OperatorUnderTest]:
    """The operator restarted with no TensorDock token in its credentials Secret."""
    patch = json.dumps([{"op": "remove", "path": f"/data/{TENSORDOCK_TOKEN}"}])
    kubectl(
        "patch", "secret", CREDENTIALS_SECRET, "--type=json", "-p", patch, namespace=operator_ns
    )
    try:
        gamevm_operator.process.restart()
        gamevm_operator.process.wait_for_log("gamevm-operator started", timeout=60)
        yield gamevm_operator
    finally:
        full = credentials_secret(gamevm_operator.tensordock.token, gamevm_operator.cloudypad.env)
        kubectl("apply", "-f", "-", input=yaml.safe_dump(full))


def test_provider_without_credentials(
    tensordock_token_removed: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    op = tensordock_token_removed
    pid = op.process.pid
    only_tensordock = premium_config(
        NO_CREDENTIALS_CONSOLE,
        preferredProviders=[{"provider": "tensordock", "priority": 1, "costPerHourLimit": 2.0}],
    )
    with consoles_without_config(kubectl, [NO_CREDENTIALS_CONSOLE]):
        kubectl("apply", "-f", "-", input=yaml.safe_dump(only_tensordock))
        gamevms.apply("no-token", consoleType=NO_CREDENTIALS_CONSOLE)
        status = gamevms.wait(
            "no-token", lambda s: TENSORDOCK_TOKEN in _condition(s, "Ready").get("message", ""),
            20, "Ready naming the missing key",
        )  # fmt: skip
        ready = _condition(status, "Ready")
        assert ready["status"] == "False"
        assert CREDENTIALS_SECRET in ready["message"], ready
        assert "providerInstanceId" not in status
        event = _wait_event(gamevms, "no-token", ready["reason"])
        assert event["type"] == "Warning"
        assert TENSORDOCK_TOKEN in event["message"], event["message"]
        assert CREDENTIALS_SECRET in event["message"], event["message"]
        # No crash and no hot loop: once settled, nothing more happens for a while.
        time.sleep(1)
        settled = _event_count(_events(gamevms, "no-token", ready["reason"]))
        version = _resource_version(gamevms, "no-token")
        time.sleep(3)
        assert _event_count(_events(gamevms, "no-token", ready["reason"])) == settled
        assert _resource_version(gamevms, "no-token") == version, "the status keeps changing"
        _assert_operator_healthy(op, pid)
        assert asyncio.run(_live_instances(op)) == [], "nothing reached the provider"
        gamevms.delete("no-token")
        gamevms.wait_gone("no-token", timeout=30)
