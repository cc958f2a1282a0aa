"""The install (`kubectl apply -k manifests/`) against the real local API server, what
its RBAC lets the operator's ServiceAccount do, and the operator doing its whole job
with nothing but that ServiceAccount's token.

The Namespace and the RBAC objects are applied for real (the `can-i` checks need
them); the rest only as a server-side dry run: no test needs the Deployment to exist
(there is no kubelet here to run it). The install holds no Secret, so applying it never
touches the credentials other tests put in gamevm-system.
"""

import asyncio
import base64
import copy
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gamevm.settings import Settings
from tests.fixtures.operator_env import GameVMs, credentials_secret, premium_config
from tests.fixtures.simulators import TensorDockSimHandle
from tests.fixtures.stack import Kubectl, KubeStack, OperatorProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OPERATOR_NAMESPACE = Settings.model_fields["namespace"].default
CREDENTIALS_SECRET = Settings.model_fields["credentials_secret"].default
SERVICE_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:gamevm-operator"
# RBAC is evaluated without the namespace having to exist.
USER_NAMESPACE = "players"
APPLIED_FOR_REAL = {
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def render(kubectl: Kubectl) -> list[dict[str, Any]]:
    rendered = kubectl("kustomize", str(MANIFESTS)).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@pytest.fixture(scope="module")
def installed_rbac(kubectl: Kubectl) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount and RBAC of manifests/, applied for real (idempotent)."""
    docs = render(kubectl)
    rbac = [doc for doc in docs if doc["kind"] in APPLIED_FOR_REAL]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    return docs


def test_apply_k_server_side_dry_run_succeeds(
    kubectl: Kubectl, installed_rbac: list[dict[str, Any]]
) -> None:
    result = kubectl("apply", "-k", str(MANIFESTS), "--dry-run=server")
    for doc in installed_rbac:
        kind = doc["kind"].lower()
        name = doc["metadata"]["name"]
        assert f"/{name} " in result.stdout, f"{kind}/{name} missing from:\n{result.stdout}"
    assert result.stdout.count("(server dry run)") == len(installed_rbac)
    # The namespace warns on pods that break the "restricted" Pod Security Standard.
    assert "PodSecurity" not in result.stderr, result.stderr


def test_pod_security_check_catches_a_weakened_pod(
    kubectl: Kubectl, installed_rbac: list[dict[str, Any]]
) -> None:
    """The negative control of the check above: the namespace label really warns."""
    weakened = copy.deepcopy(next(d for d in installed_rbac if d["kind"] == "Deployment"))
    container = weakened["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    result = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(weakened))
    assert "would violate PodSecurity" in result.stderr, result.stderr


@pytest.mark.parametrize("overlay", ["manifests", "deploy/example"])
def test_make_deploy_applies_with_the_given_image(
    kube_stack: KubeStack, installed_rbac: list[dict[str, Any]], overlay: str
) -> None:
    """`make deploy IMG=...` (hack/deploy.sh) against the API server (server-side dry
    run): the base and the example overlay (with the CloudyPad component's PVC) are
    accepted, nothing of it is a Secret, and the restricted Pod Security check is met."""
    image = "registry.example.com/team/gamevm-operator:9.9.9"
    result = subprocess.run(
        ["bash", str(ROOT / "hack" / "deploy.sh"), image, str(ROOT / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=kube_stack.env({"DRY_RUN": "server", "KUBECTL": str(kube_stack.kubectl_path)}),
    )
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/gamevm-operator" in result.stdout
    assert "secret/" not in result.stdout
    assert "PodSecurity" not in result.stderr, result.stderr
    if overlay == "deploy/example":
        assert "persistentvolumeclaim/gamevm-cloudypad-state" in result.stdout


def can_i(kubectl: Kubectl, *args: str) -> bool:
    result = kubectl("auth", "can-i", *args, f"--as={SERVICE_ACCOUNT}", check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, f"kubectl auth can-i {args}: {result.stdout}{result.stderr}"
    return answer == "yes"


# (verb, resource, where, allowed); where: "own" = the operator's namespace,
# "other" = a user's namespace, "all" = every namespace, "cluster" = no namespace.
PERMISSIONS = [
    # Secrets: create the per-VM access Secret; read nothing but its credentials.
    ("create", "secrets", "other", True),
    ("get", "secrets", "other", False),
    ("list", "secrets", "other", False),
    ("watch", "secrets", "other", False),
    ("delete", "secrets", "other", False),
    ("update", "secrets", "other", False),
    ("list", "secrets", "all", False),
    ("get", f"secrets/{CREDENTIALS_SECRET}", "own", True),
    ("update", f"secrets/{CREDENTIALS_SECRET}", "own", False),
    ("get", "secrets/gamevm-mongodb", "own", False),
    ("list", "secrets", "own", False),
    # Its own resources.
    ("watch", "gamevms.gamevm.dev", "all", True),
    ("patch", "gamevms.gamevm.dev", "other", True),
    ("patch", "gamevms.gamevm.dev/status", "other", True),
    ("create", "gamevms.gamevm.dev", "other", False),
    ("delete", "gamevms.gamevm.dev", "other", False),
    ("watch", "emulatorconfigs.gamevm.dev", "cluster", True),
    ("patch", "emulatorconfigs.gamevm.dev/status", "cluster", True),
    ("delete", "emulatorconfigs.gamevm.dev", "cluster", False),
    ("create", "events", "other", True),
    ("create", "events.events.k8s.io", "other", True),
    ("list", "namespaces", "cluster", True),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", "cluster", True),
    # Nothing else.
    ("get", "pods", "other", False),
    ("create", "pods", "other", False),
    ("create", "pods/exec", "other", False),
    ("create", "deployments.apps", "other", False),
    ("delete", "deployments.apps", "own", False),
    ("get", "configmaps", "other", False),
    ("create", "namespaces", "cluster", False),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", "cluster", False),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", "cluster", False),
    ("create", "serviceaccounts/token", "own", False),
    ("impersonate", "users", "cluster", False),
    # The read API's reviews; leader election in its own namespace only.
    ("create", "tokenreviews.authentication.k8s.io", "cluster", True),
    ("create", "subjectaccessreviews.authorization.k8s.io", "cluster", True),
    ("create", "leases.coordination.k8s.io", "own", True),
    ("update", "leases.coordination.k8s.io/gamevm-operator", "own", True),
    ("update", "leases.coordination.k8s.io/other-lease", "own", False),
    ("create", "leases.coordination.k8s.io", "other", False),
    ("patch", "pods", "own", True),
    ("patch", "pods", "other", False),
]


@pytest.mark.parametrize(
    ("verb", "resource", "where", "allowed"),
    PERMISSIONS,
    ids=[f"{'can' if p[3] else 'cannot'}-{p[0]}-{p[1]}-{p[2]}" for p in PERMISSIONS],
)
def test_service_account_permissions(
    kubectl: Kubectl,
    installed_rbac: list[dict[str, Any]],
    verb: str,
    resource: str,
    where: str,
    allowed: bool,
) -> None:
    scope = {
        "own": [f"--namespace={OPERATOR_NAMESPACE}"],
        "other": [f"--namespace={USER_NAMESPACE}"],
        "all": ["--all-namespaces"],
        "cluster": [],
    }[where]
    resource_name, _, subresource = resource.partition("/")
    target = [resource_name]
    if subresource and resource_name in ("secrets", "leases.coordination.k8s.io"):  # names
        target = [f"{resource_name}/{subresource}"]
    elif subresource:
        target = [resource_name, f"--subresource={subresource}"]
    assert can_i(kubectl, verb, *target, *scope) is allowed


def service_account_kubeconfig(kube: KubeStack, kubectl: Kubectl, path: Path) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (a bound token)."""
    token = kubectl(
        "create", "token", "gamevm-operator", "--duration=1h", namespace=OPERATOR_NAMESPACE
    ).stdout.strip()
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stack", "cluster": cluster}],
        "users": [{"name": "gamevm-operator", "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": "stack", "user": "gamevm-operator"}}
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture
def operator_as_service_account(
    kube_stack: KubeStack,
    kubectl: Kubectl,
    installed_rbac: list[dict[str, Any]],
    operator_process: Callable[..., OperatorProcess],
    tensordock_sim: TensorDockSimHandle,
    tmp_path: Path,
) -> OperatorProcess:
    """`gamevm-operator run` with the ServiceAccount's token (not admin) and the simulator."""
    kubectl("apply", "-f", "-", input=yaml.safe_dump(credentials_secret(tensordock_sim.token, {})))
    kubectl("apply", "-f", "-", input=yaml.safe_dump(premium_config()))
    kubeconfig = service_account_kubeconfig(kube_stack, kubectl, tmp_path / "operator.kubeconfig")
    whoami_command = [str(kube_stack.kubectl_path), f"--kubeconfig={kubeconfig}", "auth", "whoami"]
    whoami = subprocess.run(
        [*whoami_command, "-o", "jsonpath={.status.userInfo.username}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert whoami.stdout == SERVICE_ACCOUNT, whoami.stderr
    process = operator_process(
        kubeconfig=kubeconfig,
        env={
            "GAMEVM_NAMESPACE": OPERATOR_NAMESPACE,
            "GAMEVM_TENSORDOCK_API_URL": tensordock_sim.base_url,
            "GAMEVM_OBSERVE_INTERVAL": "0.5",
            "GAMEVM_ACTIVITY_INTERVAL": "1",
            # Every second, as before the sparse cadence (its own tests set it wider).
            "GAMEVM_ACTIVITY_MAX_INTERVAL": "1",
            "GAMEVM_RETRY_DELAY": "0.5",
            "GAMEVM_HTTP_BACKOFF_BASE": "0.05",
            "GAMEVM_HTTP_BACKOFF_MAX": "0.5",
            "GAMEVM_HTTP_TIMEOUT": "5",
        },
        name="operator-sa",
    )
    process.wait_for_log("gamevm-operator started", timeout=60)
    return process


async def live_instances(sim: TensorDockSimHandle) -> list[dict[str, Any]]:
    listing = await sim.instances()
    return [i for i in listing["instances"] if not i.get("deleted")]


def test_operator_works_with_only_its_service_account(
    operator_as_service_account: OperatorProcess,
    tensordock_sim: TensorDockSimHandle,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    gamevms = GameVMs(kubectl, namespace)
    gamevms.apply("least-privilege", userLocation={"latitude": 32.78, "longitude": -96.8})
    status = gamevms.wait_phase("least-privilege", "running", timeout=90)
    assert status["provider"] == "tensordock"
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))

    # The access Secret was created (create-only RBAC) and is owned by the GameVM.
    secret = yaml.safe_load(
        kubectl("get", "secret", "least-privilege-access", "-o", "yaml", namespace=namespace).stdout
    )
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "GameVM"
    assert base64.b64decode(secret["data"]["heartbeat-token"])

    instance_id = status["providerInstanceId"]
    assert instance_id in {i["id"] for i in asyncio.run(live_instances(tensordock_sim))}
    gamevms.delete("least-privilege")
    gamevms.wait_gone("least-privilege", timeout=90)
    # Only this VM's instance: other tests' leftovers may come and go on the shared stack.
    assert instance_id not in {i["id"] for i in asyncio.run(live_instances(tensordock_sim))}

    log = operator_as_service_account.log_text()
    # An RBAC denial names the identity; a 403 for a terminating namespace (other tests'
    # leftovers on the shared stack) does not and is not a permission problem.
    denial = re.search(r'User \\?"system:serviceaccount:[^"\\]+\\?" cannot', log)
    assert denial is None, f"the operator hit an RBAC denial: {denial.group(0) if denial else ''}"


def test_access_secret_policy_limits_what_the_operator_may_create(
    kube_stack: KubeStack,
    kubectl: Kubectl,
    installed_rbac: list[dict[str, Any]],
    namespace: str,
    tmp_path: Path,
) -> None:
    """RBAC lets the operator create any Secret; the admission policy only its own kind."""
    kubeconfig = service_account_kubeconfig(kube_stack, kubectl, tmp_path / "sa.kubeconfig")

    def create_as_operator(secret: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kube_stack.kubectl_path), f"--kubeconfig={kubeconfig}", "create", "-f", "-"],
            input=yaml.safe_dump(secret),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    def secret(name: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "gamevm-operator"},
                "ownerReferences": [
                    {
                        "apiVersion": "gamevm.dev/v1alpha1",
                        "kind": "GameVM",
                        "name": name.removesuffix("-access"),
                        "uid": "6b1d7a8e-0000-4000-8000-000000000001",
                        "controller": True,
                    }
                ],
            },
            "type": "Opaque",
            "stringData": {"heartbeat-token": "t"},
        }
        body.update(extra)
        return body

    token_secret = secret("vm-access", type="kubernetes.io/service-account-token")
    token_secret["metadata"]["annotations"] = {"kubernetes.io/service-account.name": "default"}
    refused = {
        "a ServiceAccount token": token_secret,
        "another name": secret("vm-credentials"),
        "no owner": {**secret("vm-access"), "metadata": {"name": "vm-access"}},
        "other keys": secret("vm-access", stringData={"password": "x"}),
    }
    for what, body in refused.items():
        body["metadata"]["namespace"] = namespace
        result = create_as_operator(body)
        assert result.returncode != 0, f"{what} was admitted"
        assert "gamevm-operator-access-secrets" in result.stderr, (what, result.stderr)
    allowed = create_as_operator(secret("vm-access"))
    assert allowed.returncode == 0, allowed.stderr
