"""The install beyond the base: deploy/example (an overlay for a real cluster, with the
CloudyPad component deploy/cloudypad) and `make deploy IMG=...` (hack/deploy.sh)."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gamevm.settings import Settings
from gamevm_dev.devstack.binaries import KUBECTL, find_existing

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_SCRIPT = ROOT / "hack" / "deploy.sh"
EXAMPLE = ROOT / "deploy" / "example"
NAMESPACE = Settings.model_fields["namespace"].default

Manifest = dict[str, Any]


def kubectl_binary() -> str:
    path = find_existing(KUBECTL)
    if path is None:
        pytest.fail(f"kubectl not found: {KUBECTL.install_hint}")
    return str(path)


def kustomize(folder: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl_binary(), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {folder} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def deploy(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY_SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "KUBECTL": kubectl_binary(), **env},
    )


def operator_container(docs: list[Manifest]) -> Manifest:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


@pytest.fixture(scope="module")
def example() -> list[Manifest]:
    return kustomize(EXAMPLE)


def test_example_overlay_holds_no_secret(example: list[Manifest]) -> None:
    assert [d["metadata"]["name"] for d in example if d["kind"] == "Secret"] == []


def test_example_overlay_names_its_own_image(example: list[Manifest]) -> None:
    image = operator_container(example)["image"]
    assert image == "registry.example.com/gamevm/gamevm-operator:0.1.0-cloudypad"


def test_cloudypad_state_is_on_a_volume(example: list[Manifest]) -> None:
    container = operator_container(example)
    env = {e["name"]: e.get("value") for e in container["env"]}
    home = env["GAMEVM_CLOUDYPAD_HOME"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert home in mounts, "CLOUDYPAD_HOME must be a mounted volume, not the pod's /tmp"
    (deployment,) = [d for d in example if d["kind"] == "Deployment"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = volumes[mounts[home]]["persistentVolumeClaim"]["claimName"]
    (pvc,) = [d for d in example if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["metadata"]["name"] == claim
    assert pvc["metadata"]["namespace"] == NAMESPACE
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    # Pulumi's plugin cache lives on the same volume (the CLI only gets GAMEVM_CLOUDYPAD_ENV).
    extra = json.loads(env["GAMEVM_CLOUDYPAD_ENV"])
    assert extra["PULUMI_HOME"].startswith(home + "/")


def test_cloudypad_settings_are_real_and_bounded(
    example: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    container = operator_container(example)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    fields = {f"GAMEVM_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= fields
    for name, value in env.items():  # read as the operator reads them (JSON for maps)
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.cloudypad_home == "/var/lib/cloudypad"
    assert settings.cloudypad_cli == "cloudypad"
    limits = container["resources"]["limits"]
    assert {"memory", "ephemeral-storage"} <= set(limits)
    # Still the restricted pod: the state volume is the only new writable path.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_deploy_needs_an_image() -> None:
    result = deploy()
    assert result.returncode == 2
    assert "IMG=" in result.stderr


@pytest.mark.parametrize("folder", ["manifests", "deploy/example"])
@pytest.mark.parametrize(
    "image", ["registry.example.com/team/gamevm-operator:1.2.3", "ghcr.io/o/op@sha256:" + "a" * 64]
)
def test_deploy_uses_img_over_any_overlay_name(folder: str, image: str) -> None:
    result = deploy(image, str(ROOT / folder), RENDER="1")
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert operator_container(docs)["image"] == image
    assert [d for d in docs if d["kind"] == "Secret"] == []
