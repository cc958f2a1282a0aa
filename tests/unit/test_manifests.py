"""The kustomize base in manifests/: renders, and each object has the properties we promise."""

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gamevm.handlers.lifecycle import MASTER_KEY
from gamevm.providers.credentials import CREDENTIAL_KEYS
from gamevm.services.access import MIN_MASTER_KEY_BYTES
from gamevm.settings import Settings
from gamevm_dev.devstack.binaries import KUBECTL, find_existing

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = Settings.model_fields["namespace"].default
CREDENTIALS_SECRET = Settings.model_fields["credentials_secret"].default
HTTP_PORT = Settings.model_fields["http_port"].default
UID = 65532

Manifest = dict[str, Any]

# The operator's complete API surface (see manifests/rbac.yaml for why each is needed).
EXPECTED_CLUSTER_RULES = {
    ("gamevm.dev", "gamevms"): {"get", "list", "watch", "patch", "update"},
    ("gamevm.dev", "gamevms/status"): {"get", "patch", "update"},
    ("gamevm.dev", "emulatorconfigs"): {"get", "list", "watch", "patch"},
    ("gamevm.dev", "emulatorconfigs/status"): {"get", "patch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("", "secrets"): {"create"},
    ("authentication.k8s.io", "tokenreviews"): {"create"},
    ("authorization.k8s.io", "subjectaccessreviews"): {"create"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"list", "watch"},
}


def kubectl_binary() -> str:
    path = find_existing(KUBECTL)
    if path is None:
        pytest.fail(f"kubectl not found: {KUBECTL.install_hint}")
    return str(path)


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    result = subprocess.run(
        [kubectl_binary(), "kustomize", str(ROOT / "manifests")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize manifests/ failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(rendered: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [
        doc
        for doc in rendered
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def containers(deployment: Manifest) -> Iterator[Manifest]:
    yield from deployment["spec"]["template"]["spec"]["containers"]


def test_renders_the_complete_install(rendered: list[Manifest]) -> None:
    kinds = sorted(doc["kind"] for doc in rendered)
    assert kinds == sorted(
        [
            "Namespace",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service",
            "Service",
            "NetworkPolicy",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
    )
    for doc in rendered:
        scoped = doc["kind"] not in {
            "Namespace",
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
        }
        if doc["kind"].startswith("ValidatingAdmissionPolicy"):
            # Cluster-scoped, but kustomize's built-in schema predates them and adds the
            # namespace; the API server drops it (test_install_e2e applies them).
            continue
        assert doc["metadata"].get("namespace") == (NAMESPACE if scoped else None), doc["kind"]


def test_crds_are_the_generated_ones(rendered: list[Manifest]) -> None:
    names = {
        doc["metadata"]["name"] for doc in rendered if doc["kind"] == "CustomResourceDefinition"
    }
    assert names == {"gamevms.gamevm.dev", "emulatorconfigs.gamevm.dev"}
    for crd_file in ("gamevm.yaml", "emulatorconfig.yaml"):
        copy = yaml.safe_load((ROOT / "manifests" / "crds" / crd_file).read_text())
        source = yaml.safe_load((ROOT / "crds" / crd_file).read_text())
        assert copy == source, f"manifests/crds/{crd_file} differs: run `gamevm-operator crds`"


def rules_of(role: Manifest) -> dict[tuple[str, str], set[str]]:
    rules: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                rules.setdefault((group, resource), set()).update(rule["verbs"])
    return rules


def test_cluster_role_grants_only_what_the_operator_uses(rendered: list[Manifest]) -> None:
    role = find(rendered, "ClusterRole", "gamevm-operator")
    assert rules_of(role) == EXPECTED_CLUSTER_RULES
    for rule in role["rules"]:
        assert "*" not in rule["verbs"]
        assert "*" not in rule["resources"]
        assert "*" not in rule["apiGroups"]
        assert "nonResourceURLs" not in rule


def test_secrets_are_never_readable_cluster_wide(rendered: list[Manifest]) -> None:
    cluster = rules_of(find(rendered, "ClusterRole", "gamevm-operator"))
    assert cluster[("", "secrets")] == {"create"}

    role = find(rendered, "Role", "gamevm-operator-credentials")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [CREDENTIALS_SECRET],
            "verbs": ["get"],
        }
    ]


def test_bindings_name_the_operator_service_account(rendered: list[Manifest]) -> None:
    account = find(rendered, "ServiceAccount")["metadata"]["name"]
    bindings = [d for d in rendered if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert len(bindings) == 3
    for binding in bindings:
        role_kind = binding["kind"].removesuffix("Binding")
        assert binding["roleRef"]["kind"] == role_kind
        find(rendered, role_kind, binding["roleRef"]["name"])
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
    deployment = find(rendered, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account


def test_deployment_runs_two_replicas_with_leader_election(rendered: list[Manifest]) -> None:
    spec = find(rendered, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    (container,) = containers(find(rendered, "Deployment"))
    env = {item["name"]: item for item in container["env"]}
    assert env["GAMEVM_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert Settings.model_fields["leader_election"].default is True
    role = find(rendered, "Role", "gamevm-operator-leader-election")
    lease_name = Settings.model_fields["leader_lease_name"].default
    assert {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [lease_name],
        "verbs": ["get", "update"],
    } in role["rules"]
    api_service = find(rendered, "Service", "gamevm-operator-api")
    assert api_service["spec"]["selector"]["gamevm.dev/leader"] == "true"
    labels = spec["template"]["metadata"]["labels"]
    for key, value in spec["selector"]["matchLabels"].items():
        assert labels[key] == value


def test_pod_runs_restricted(rendered: list[Manifest]) -> None:
    pod = find(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in containers(find(rendered, "Deployment")):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == UID
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "privileged" not in context
        # /tmp is the only writable path (HOME=/tmp in the image).
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not pod.get("hostNetwork")
    assert not pod.get("hostPID")


def test_container_resources_probe_and_image(rendered: list[Manifest]) -> None:
    (container,) = containers(find(rendered, "Deployment"))
    assert container["image"] == "gamevm-operator:0.1.0"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[probe["port"]] == HTTP_PORT
    assert "readinessProbe" not in container  # pointless for an operator (kopf docs)


def test_env_names_are_real_settings(rendered: list[Manifest]) -> None:
    (container,) = containers(find(rendered, "Deployment"))
    env = {item["name"]: item for item in container["env"]}
    fields = {f"GAMEVM_{name.upper()}" for name in Settings.model_fields}
    for name in env:
        assert name in fields, f"{name} is not a Settings field (operator/settings.py)"
    assert env["GAMEVM_HTTP_HOST"]["value"] == "0.0.0.0"  # noqa: S104 (inside the pod)
    assert env["GAMEVM_HTTP_PORT"]["value"] == str(HTTP_PORT)
    assert env["GAMEVM_CREDENTIALS_SECRET"]["value"] == CREDENTIALS_SECRET
    assert env["GAMEVM_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["GAMEVM_MONGODB_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "gamevm-mongodb",
        "key": "uri",
        "optional": True,
    }
    Settings.model_validate(  # the literal values parse
        {k.removeprefix("GAMEVM_").lower(): v["value"] for k, v in env.items() if "value" in v}
    )


def test_services_split_metrics_and_api(rendered: list[Manifest]) -> None:
    (container,) = containers(find(rendered, "Deployment"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": HTTP_PORT, "api": Settings.model_fields["api_port"].default}
    api = find(rendered, "Service", "gamevm-operator-api")
    assert [(p["name"], p["targetPort"]) for p in api["spec"]["ports"]] == [("api", "api")]
    service = find(rendered, "Service", "gamevm-operator")
    (port,) = service["spec"]["ports"]
    assert port["port"] == HTTP_PORT
    assert port["targetPort"] == "http"
    policy = find(rendered, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    open_ports = [r for r in policy["spec"]["ingress"] if "from" not in r]
    assert [p["port"] for r in open_ports for p in r["ports"]] == ["api"], (
        "only the API port (which authenticates every request) is open to all"
    )
    pod_labels = find(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for key, value in service["spec"]["selector"].items():
        assert pod_labels[key] == value
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"


def test_base_holds_no_secret(rendered: list[Manifest]) -> None:
    # Re-applying the base (or a GitOps sync) must never overwrite real credentials: the
    # Secrets are created once, outside the manifests (docs/operations.md, "Secrets").
    assert [doc for doc in rendered if doc["kind"] == "Secret"] == []
    text = "\n".join(yaml.safe_dump(doc) for doc in rendered)
    assert "REPLACE_ME" not in text
    assert "stringData" not in text


def test_documented_secret_commands_create_the_keys_the_operator_reads() -> None:
    """The `kubectl create secret` lines in docs/operations.md name the Secret and keys the
    Deployment and the operator use."""
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert f"create secret generic {CREDENTIALS_SECRET}" in operations
    assert f"--from-literal={MASTER_KEY}=" in operations
    assert "create secret generic gamevm-mongodb" in operations
    assert "--from-literal=uri=" in operations
    # `openssl rand -base64 48` gives 64 characters: above the operator's minimum.
    assert "openssl rand -base64 48" in operations
    assert MIN_MASTER_KEY_BYTES <= 64
    assert "--from-literal=tensordock-token=" in operations
    assert {"tensordock-token"} <= {k for keys in CREDENTIAL_KEYS.values() for k in keys.all}


def test_namespace_enforces_restricted_pod_security(rendered: list[Manifest]) -> None:
    labels = find(rendered, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
