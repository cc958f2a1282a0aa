"""The operator's own Kubernetes client against the real API server: kopf's login
(kubeconfig client certificates here), the API server's refusals mapped to the KubeError
status the services branch on (401, 403, 404, 409), a fresh login after a 401, and
writes whose echoed object is never decoded."""

import dataclasses
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
import yaml
from kubernetes.config import kube_config

import gamevm.handlers.kube as kube_module
from gamevm.handlers.kube import Kube, KubeError, KubeSecretReader, kopf_login
from gamevm.models.names import ACCESS_SECRET_HEARTBEAT_TOKEN
from gamevm.services.access import AccessMaterial
from gamevm.services.authz import ResourceCheck
from gamevm.services.ports import VMRef
from tests.fixtures.stack import Kubectl, KubeStack

pytestmark = pytest.mark.e2e

MATERIAL = AccessMaterial(
    ssh_private_key="private", ssh_public_key="public", heartbeat_token="heartbeat"
)


@pytest.fixture
def admin_login(kube_stack: KubeStack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """kopf's login as the operator runs it, on the test stack's kubeconfig (read from
    $KUBECONFIG when the `kubernetes` library is imported, hence set here instead)."""
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kube_stack.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return kopf_login(kopf.OperatorSettings())


def _as_token(login: Any, token: str) -> Callable[[], kopf.ConnectionInfo]:
    """The same server and CA, authenticated by `token` instead of the client certificate."""

    def login_with_token() -> kopf.ConnectionInfo:
        info: kopf.ConnectionInfo = login()
        return dataclasses.replace(
            info, token=token, scheme="Bearer", certificate_path=None, private_key_path=None
        )

    return login_with_token


def _gamevm(kubectl: Kubectl, namespace: str, name: str) -> VMRef:
    body = {
        "apiVersion": "gamevm.dev/v1alpha1",
        "kind": "GameVM",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"consoleType": "switch"},
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
    uid = kubectl("get", "gamevm", name, "-o", "jsonpath={.metadata.uid}", namespace=namespace)
    return VMRef(namespace=namespace, name=name, uid=uid.stdout.strip())


async def test_writes_reads_and_the_status_of_each_refusal(
    admin_login: Any, kubectl: Kubectl, namespace: str
) -> None:
    kube = Kube(admin_login)
    try:
        ref = _gamevm(kubectl, namespace, "vm")
        await kube.patch_gamevm_status(namespace, "vm", {"message": "patched"})
        await kube.patch_gamevm_annotations(namespace, "vm", {"gamevm.dev/note": "x"})
        body = json.loads(kubectl("get", "gamevm", "vm", "-o", "json", namespace=namespace).stdout)
        assert body["status"]["message"] == "patched"
        assert body["metadata"]["annotations"]["gamevm.dev/note"] == "x"

        # 404: a missing object; a missing Secret reads as None.
        with pytest.raises(KubeError) as missing:
            await kube.patch_gamevm_status(namespace, "absent", {"message": "x"})
        assert missing.value.status == 404
        assert str(missing.value) == "404 Not Found"
        assert await kube.read_secret_data(namespace, "absent") is None

        # 409: the name is taken, so the create reports False.
        assert await kube.create_access_secret(ref, "vm-access", MATERIAL) is True
        assert await kube.create_access_secret(ref, "vm-access", MATERIAL) is False
        data = await kube.read_secret_data(namespace, "vm-access")
        assert data is not None
        assert data[ACCESS_SECRET_HEARTBEAT_TOKEN] == "heartbeat"
        secret = json.loads(
            kubectl("get", "secret", "vm-access", "-o", "json", namespace=namespace).stdout
        )
        owner = secret["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("GameVM", "vm", ref.uid)
        assert owner["controller"] is True

        # 422 (invalid) and every other refusal keep their status too.
        with pytest.raises(KubeError) as invalid:
            await kube.patch_gamevm_status(namespace, "vm", {"phase": "not-a-phase"})
        assert invalid.value.status == 422

        items, version = await kube.list_gamevms()
        assert any(item["metadata"]["name"] == "vm" for item in items)
        assert version
    finally:
        await kube.aclose()


async def test_a_write_never_decodes_the_echoed_object(
    admin_login: Any, kubectl: Kubectl, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = Kube(admin_login)
    try:
        ref = _gamevm(kubectl, namespace, "vm")

        def no_decoding(_: Any) -> Any:
            raise AssertionError("a write decoded the API server's answer")

        monkeypatch.setattr(
            kube_module, "json", SimpleNamespace(dumps=json.dumps, loads=no_decoding)
        )
        await kube.patch_gamevm_status(namespace, "vm", {"message": "undecoded"})
        await kube.patch_gamevm_annotations(namespace, "vm", {"gamevm.dev/note": "y"})
        assert await kube.create_access_secret(ref, "vm-access", MATERIAL) is True
        status = kubectl(
            "get", "gamevm", "vm", "-o", "jsonpath={.status.message}", namespace=namespace
        )
        assert status.stdout == "undecoded"
    finally:
        await kube.aclose()


async def test_forbidden_and_unauthorized(
    admin_login: Any,
    kubectl: Kubectl,
    namespace: str,
    sa_token: Callable[[str, str], str],
) -> None:
    kubectl("create", "secret", "generic", "creds", "--from-literal=k=v", namespace=namespace)
    # 403: a ServiceAccount without RBAC; the credentials reader turns it into None.
    nobody = Kube(_as_token(admin_login, sa_token(namespace, "nobody")))
    try:
        with pytest.raises(KubeError) as forbidden:
            await nobody.read_secret_data(namespace, "creds")
        assert forbidden.value.status == 403
        assert await KubeSecretReader(nobody, namespace).read("creds") is None
    finally:
        await nobody.aclose()

    # 401: a token the API server does not know, after one fresh login.
    logins: list[int] = []

    def bad_login() -> kopf.ConnectionInfo:
        logins.append(1)
        info: kopf.ConnectionInfo = _as_token(admin_login, "not-a-token")()
        return info

    stranger = Kube(bad_login)
    try:
        with pytest.raises(KubeError) as unauthorized:
            await stranger.read_secret_data(namespace, "creds")
        assert unauthorized.value.status == 401
        assert len(logins) == 2, "a 401 logs in once more, then gives up"
    finally:
        await stranger.aclose()


async def test_a_401_logs_in_again_and_repeats_the_call(
    admin_login: Any, kubectl: Kubectl, namespace: str
) -> None:
    """A rotated service-account token: the old one is refused, the next login works."""
    kubectl("create", "secret", "generic", "creds", "--from-literal=k=v", namespace=namespace)
    expired = _as_token(admin_login, "expired-token")
    logins = iter([expired, admin_login])

    def rotated() -> kopf.ConnectionInfo:
        info: kopf.ConnectionInfo = next(logins)()
        return info

    kube = Kube(rotated)
    try:
        assert await kube.read_secret_data(namespace, "creds") == {"k": "v"}
        assert await kube.read_secret_data(namespace, "creds") == {"k": "v"}
    finally:
        await kube.aclose()


async def test_token_and_access_reviews(
    admin_login: Any, kubectl: Kubectl, namespace: str, sa_token: Callable[[str, str], str]
) -> None:
    kube = Kube(admin_login)
    try:
        caller = await kube.review_token(sa_token(namespace, "reader"))
        assert caller is not None
        assert caller.username == f"system:serviceaccount:{namespace}:reader"
        assert "system:authenticated" in caller.groups
        assert await kube.review_token("not-a-token") is None
        check = ResourceCheck(namespace=namespace, name="vm")
        assert await kube.review_access(caller, check) is False
        kubectl("create", "role", "r", "--verb=get", "--resource=gamevms", namespace=namespace)
        kubectl(
            "create",
            "rolebinding",
            "r",
            "--role=r",
            f"--serviceaccount={namespace}:reader",
            namespace=namespace,
        )
        assert await kube.review_access(caller, check) is True
    finally:
        await kube.aclose()
