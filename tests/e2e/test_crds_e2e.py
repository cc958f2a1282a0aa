"""The CRDs against a real API server: they install, `kubectl get` works, every
sample applies, invalid objects are rejected by the server with a message naming
the field, and spec and status are separate (status subresource)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gamevm.models.names import API_VERSION, GAMEVM_PLURAL, GROUP
from gamevm_dev.devstack.kube import crd_names
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
SAMPLES = ROOT / "manifests" / "samples"
SAMPLE_FILES = sorted(p for p in SAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def _base_gamevm(name: str = "base") -> dict[str, Any]:
    doc = _load(SAMPLES / "gamevm-switch-mario-odyssey.yaml")
    doc["metadata"] = {"name": name}
    return doc


def _base_emulatorconfig() -> dict[str, Any]:
    doc = _load(SAMPLES / "emulatorconfig-switch.yaml")
    doc["metadata"] = {"name": doc["spec"]["consoleType"]}
    return doc


def test_crds_are_established(kubectl: Kubectl) -> None:
    names = crd_names(CRDS)
    assert sorted(names) == [f"emulatorconfigs.{GROUP}", f"gamevms.{GROUP}"]
    # Re-applying is a no-op (what `dev up` does on every run).
    kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=gamevm-dev", "-f", str(CRDS)
    )
    for name in names:
        crd = json.loads(kubectl("get", "crd", name, "-o=json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NamesAccepted") == "True", conditions
        # A non-structural schema shows up as this condition.
        assert "NonStructuralSchema" not in conditions, crd["status"]["conditions"]


@pytest.mark.parametrize(
    "args",
    [
        ("get", "gamevms"),
        ("get", "gvm"),
        ("get", "gamevms", "-o=wide"),
        ("get", "emulatorconfigs"),
        ("get", "emucfg"),
        ("get", "gaming"),
    ],
    ids=" ".join,
)
def test_kubectl_get_works(kubectl: Kubectl, namespace: str, args: tuple[str, ...]) -> None:
    kubectl(*args, namespace=namespace)


def test_printer_columns(kubectl: Kubectl, namespace: str) -> None:
    gvm = _base_gamevm("columns")
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(gvm))
    header = kubectl("get", "gamevms", namespace=namespace).stdout.splitlines()[0].split()
    assert header[:6] == ["NAME", "CONSOLE", "PRESET", "PROVIDER", "PHASE", "IP"], header
    wide = kubectl("get", "gamevms", "-o=wide", namespace=namespace).stdout.splitlines()[0]
    assert "REGION" in wide, wide
    assert "COST/H" in wide, wide
    row = kubectl("get", "gamevms", "columns", "--no-headers", namespace=namespace).stdout
    assert row.split()[1] == "switch"


@pytest.fixture
def cleanup_emulatorconfigs(kubectl: Kubectl) -> Iterator[None]:
    """EmulatorConfigs are cluster-scoped: delete the ones a test created."""
    before = set(kubectl("get", "emucfg", "-o=name").stdout.split())
    yield
    after = set(kubectl("get", "emucfg", "-o=name").stdout.split())
    for name in after - before:
        kubectl("delete", name, "--wait=false", check=False)


@pytest.mark.usefixtures("cleanup_emulatorconfigs")
@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_sample_applies(kubectl: Kubectl, namespace: str, path: Path) -> None:
    doc = _load(path)
    assert doc["apiVersion"] == API_VERSION
    applied = kubectl("apply", "-f", str(path), namespace=namespace)
    assert (
        "configured" in applied.stdout
        or "created" in applied.stdout
        or "unchanged" in applied.stdout
    )
    kind = doc["kind"].lower()
    got = json.loads(
        kubectl("get", kind, doc["metadata"]["name"], "-o=json", namespace=namespace).stdout
    )
    # Nothing the sample sets was pruned by the schema.
    for key, value in doc["spec"].items():
        assert got["spec"][key] == value, key


def test_kustomization_lists_every_sample() -> None:
    listed = set(_load(SAMPLES / "kustomization.yaml")["resources"])
    assert listed == {p.name for p in SAMPLE_FILES}


def _gamevm(mutate: Any) -> dict[str, Any]:
    doc = _base_gamevm("invalid")
    mutate(doc)
    return doc


def _emucfg(mutate: Any) -> dict[str, Any]:
    doc = _base_emulatorconfig()
    mutate(doc)
    return doc


def _set(path: str, value: Any) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    return mutate


def _duplicate_priority(doc: dict[str, Any]) -> None:
    providers = doc["spec"]["preferredProviders"]
    providers[1]["priority"] = providers[0]["priority"]


def _duplicate_provider(doc: dict[str, Any]) -> None:
    providers = doc["spec"]["preferredProviders"]
    providers[1]["provider"] = providers[0]["provider"]


INVALID = [
    (
        "gamevm-bad-console",
        _gamevm(_set("spec.consoleType", "atari")),
        ["spec.consoleType", "atari"],
    ),
    (
        "gamevm-latitude-91",
        _gamevm(_set("spec.userLocation.latitude", 91)),
        ["spec.userLocation.latitude"],
    ),
    (
        "gamevm-longitude-181",
        _gamevm(_set("spec.userLocation.longitude", -181)),
        ["spec.userLocation.longitude"],
    ),
    (
        "gamevm-negative-timeout",
        _gamevm(_set("spec.autoStopTimeout", -5)),
        ["spec.autoStopTimeout"],
    ),
    ("gamevm-zero-timeout", _gamevm(_set("spec.autoStopTimeout", 0)), ["spec.autoStopTimeout"]),
    ("gamevm-bad-provider", _gamevm(_set("spec.provider", "hetzner")), ["spec.provider"]),
    ("gamevm-bad-game-id", _gamevm(_set("spec.gameId", "Mario Odyssey")), ["spec.gameId"]),
    (
        "gamevm-bad-run-strategy",
        _gamevm(_set("spec.runStrategy", "Sometimes")),
        ["spec.runStrategy"],
    ),
    ("gamevm-unknown-field", _gamevm(_set("spec.colour", "red")), ['unknown field "spec.colour"']),
    (
        "gamevm-unknown-nested-field",
        _gamevm(_set("spec.userLocation.altitude", 10)),
        ['unknown field "spec.userLocation.altitude"'],
    ),
    (
        "gamevm-no-console",
        _gamevm(lambda d: d["spec"].pop("consoleType")),
        ["spec.consoleType", "Required"],
    ),
    (
        "emucfg-duplicate-priorities",
        _emucfg(_duplicate_priority),
        ["spec.preferredProviders", "priorities must be unique"],
    ),
    (
        "emucfg-duplicate-providers",
        _emucfg(_duplicate_provider),
        ["spec.preferredProviders", "each provider at most once"],
    ),
    (
        "emucfg-name-not-console",
        _emucfg(_set("metadata.name", "wii")),
        ["metadata.name must equal spec.consoleType"],
    ),
    ("emucfg-bad-console", _emucfg(_set("spec.consoleType", "atari")), ["spec.consoleType"]),
    ("emucfg-unknown-field", _emucfg(_set("spec.turbo", True)), ['unknown field "spec.turbo"']),
    (
        "emucfg-negative-cost",
        _emucfg(_set("spec.costPerHourLimit", -1)),
        ["spec.costPerHourLimit"],
    ),
    (
        "emucfg-no-enabled-provider",
        _emucfg(lambda d: [p.update(enabled=False) for p in d["spec"]["preferredProviders"]]),
        ["spec.preferredProviders", "at least one enabled provider"],
    ),
]


@pytest.mark.parametrize(
    ("doc", "expected"), [(d, e) for _, d, e in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_object_is_rejected(
    kubectl: Kubectl, namespace: str, doc: dict[str, Any], expected: list[str]
) -> None:
    # kubectl's default --validate=strict asks the server for fieldValidation=Strict;
    # the rejection below comes from the API server, not from kubectl.
    result = kubectl("create", "-f", "-", namespace=namespace, input=json.dumps(doc), check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    for text in expected:
        assert text in result.stderr, result.stderr
    assert "is invalid" in result.stderr or "strict decoding error" in result.stderr, result.stderr


def test_server_rejects_unknown_fields_with_strict_validation(
    kubectl: Kubectl, namespace: str
) -> None:
    doc = _gamevm(_set("spec.colour", "red"))
    doc["metadata"]["namespace"] = namespace
    url = f"/apis/{API_VERSION}/namespaces/{namespace}/{GAMEVM_PLURAL}?fieldValidation=Strict"
    raw = kubectl("create", "--raw", url, "-f", "-", input=json.dumps(doc), check=False)
    assert raw.returncode != 0
    assert (
        'unknown field \\"spec.colour\\"' in raw.stderr
        or 'unknown field "spec.colour"' in raw.stderr
    ), raw.stderr


def test_server_side_apply_rejects_unknown_fields(kubectl: Kubectl, namespace: str) -> None:
    doc = _gamevm(_set("spec.colour", "red"))
    result = kubectl(
        "apply", "--server-side", "--field-manager=test", "-f", "-",
        namespace=namespace, input=json.dumps(doc), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert ".spec.colour: field not declared in schema" in result.stderr, result.stderr


def test_console_type_is_immutable(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(_base_gamevm("immutable")))
    patched = kubectl(
        "patch", "gamevm", "immutable", "--type=merge", "-p", '{"spec":{"consoleType":"wii"}}',
        namespace=namespace, check=False,
    )  # fmt: skip
    assert patched.returncode != 0
    assert "consoleType is immutable" in patched.stderr, patched.stderr


def _get(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    result = kubectl("get", "gamevm", name, "-o=json", namespace=namespace).stdout
    doc: dict[str, Any] = json.loads(result)
    return doc


def test_status_subresource_ignores_spec(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(_base_gamevm("split")))
    before = _get(kubectl, namespace, "split")
    patch = {
        "spec": {"gameId": "changed-by-status"},
        "status": {"phase": "running", "message": "hi"},
    }
    kubectl(
        "patch", "gamevm", "split", "--subresource=status", "--type=merge", "-p", json.dumps(patch),
        namespace=namespace,
    )  # fmt: skip
    after = _get(kubectl, namespace, "split")
    assert after["status"]["phase"] == "running"
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_main_resource_ignores_status(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(_base_gamevm("split2")))
    kubectl(
        "patch", "gamevm", "split2", "--subresource=status", "--type=merge",
        "-p", '{"status":{"phase":"running"}}', namespace=namespace,
    )  # fmt: skip
    before = _get(kubectl, namespace, "split2")
    patch = {"spec": {"gameId": "new-game"}, "status": {"phase": "error"}}
    kubectl(
        "patch", "gamevm", "split2", "--type=merge", "-p", json.dumps(patch), namespace=namespace
    )
    after = _get(kubectl, namespace, "split2")
    assert after["spec"]["gameId"] == "new-game"
    assert after["status"] == before["status"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1


def test_defaults_are_applied(kubectl: Kubectl, namespace: str) -> None:
    doc = _base_gamevm("defaults")
    for key in ("autoStopTimeout", "runStrategy", "deletionPolicy"):
        doc["spec"].pop(key, None)
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(doc))
    spec = _get(kubectl, namespace, "defaults")["spec"]
    assert spec["autoStopTimeout"] == 900
    assert spec["runStrategy"] == "Manual"
    assert spec["deletionPolicy"] == "Delete"


def test_status_fields_are_validated(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(_base_gamevm("badstatus")))
    result = kubectl(
        "patch", "gamevm", "badstatus", "--subresource=status", "--type=merge",
        "-p", '{"status":{"phase":"exploded"}}', namespace=namespace, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "status.phase" in result.stderr, result.stderr


def test_base_manifests_are_valid(kubectl: Kubectl, namespace: str) -> None:
    # Guards the invalid cases: each differs from a valid object by one change only.
    for doc in (_base_gamevm("valid-base"), _base_emulatorconfig()):
        result = kubectl(
            "create",
            "--dry-run=server",
            "-f",
            "-",
            namespace=namespace,
            input=json.dumps(copy.deepcopy(doc)),
            check=False,
        )
        assert result.returncode == 0 or "AlreadyExists" in result.stderr, result.stderr
