"""The operator's HTTP surface against the real API server: two ports, the read API
authorized per GameVM by TokenReview + SubjectAccessReview, the heartbeat rate-limited.

ServiceAccount tokens come from the TokenRequest API (`kubectl create token`); RBAC is on.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.fixtures.chaos import MirroredOperator
from tests.fixtures.operator_env import GameVMs, start_operator
from tests.fixtures.simulators import CloudyPadSimHandle, TensorDockSimHandle
from tests.fixtures.stack import Kubectl, OperatorProcess

pytestmark = pytest.mark.e2e


def _request(url: str, token: str | None = None, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url, data=b"" if method == "POST" else None, method=method
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body) if body else None
        except ValueError:
            return error.code, body.decode(errors="replace")


def _grant_get(kubectl: Kubectl, namespace: str, account: str) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "gamevm-viewer", "namespace": namespace},
        "rules": [{"apiGroups": ["gamevm.dev"], "resources": ["gamevms"], "verbs": ["get"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "gamevm-viewer", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        },  # type: ignore[index]
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))


def test_read_api_needs_a_token_and_rbac_get_on_the_gamevm(
    mirrored_operator: MirroredOperator,
    gamevms: GameVMs,
    kubectl: Kubectl,
    sa_token: Callable[[str, str], str],
    cluster_reader_token: str,
) -> None:
    process = mirrored_operator.op.process
    api = f"http://127.0.0.1:{process.api_port}"
    ops = f"http://127.0.0.1:{process.http_port}"
    namespace = gamevms.namespace
    gamevms.apply("authz", autoStopTimeout=1800)
    uid = (gamevms.get("authz") or {})["metadata"]["uid"]
    deadline = time.monotonic() + 30
    while (answer := _request(f"{api}/v1/vms/{uid}", cluster_reader_token))[0] != 200:
        assert time.monotonic() < deadline, f"the VM never reached the read API: {answer}"
        time.sleep(0.3)

    _grant_get(kubectl, namespace, "viewer")
    viewer = sa_token(namespace, "viewer")
    stranger = sa_token(namespace, "stranger")

    # 401: no token, a token the API server does not know.
    for token in (None, "not-a-kubernetes-token"):
        code, body = _request(f"{api}/v1/vms/{uid}", token)
        assert code == 401, body
        assert _request(f"{api}/v1/vms", token)[0] == 401
    # 403: a ServiceAccount that may not get GameVMs in that namespace.
    code, body = _request(f"{api}/v1/vms/{uid}", stranger)
    assert code == 403, body
    assert _request(f"{api}/v1/vms/{uid}/status", stranger)[0] == 403
    assert _request(f"{api}/v1/vms?namespace={namespace}", stranger)[0] == 403
    code, listed = _request(f"{api}/v1/vms", stranger)
    assert code == 200
    assert uid not in {vm["vm_id"] for vm in listed}, "a listing shows only what RBAC allows"
    # 200: one that may.
    code, body = _request(f"{api}/v1/vms/{uid}", viewer)
    assert code == 200, body
    assert body["vm_id"] == uid
    assert _request(f"{api}/v1/vms/{uid}/status", viewer)[0] == 200
    code, listed = _request(f"{api}/v1/vms?namespace={namespace}", viewer)
    assert code == 200, listed
    assert [vm["vm_id"] for vm in listed] == [uid]
    code, listed = _request(f"{api}/v1/vms", viewer)
    assert {vm["vm_id"] for vm in listed} == {uid}, "nothing of other namespaces"

    # Two ports: metrics and health only on the operations port, the API only on its own.
    assert _request(f"{ops}/healthz")[0] == 200
    assert _request(f"{ops}/v1/vms/{uid}", viewer)[0] == 404
    assert _request(f"{api}/metrics", viewer)[0] == 404
    assert _request(f"{api}/healthz")[0] == 404


def test_heartbeat_is_rate_limited_per_source(
    kubectl: Kubectl,
    operator_ns: str,
    operator_process: Callable[..., OperatorProcess],
    tensordock_sim: TensorDockSimHandle,
    cloudypad_sim: CloudyPadSimHandle,
    gamevms: GameVMs,
) -> None:
    op = start_operator(
        kubectl,
        operator_ns,
        operator_process,
        tensordock_sim,
        cloudypad_sim,
        {"GAMEVM_HEARTBEAT_RATE_PER_SECOND": "1", "GAMEVM_HEARTBEAT_BURST": "10"},
    )
    api = f"http://127.0.0.1:{op.process.api_port}"
    url = f"{api}/v1/gamevms/{gamevms.namespace}/nobody/activity"
    codes = [_request(url, "guess", method="POST")[0] for _ in range(30)]
    assert set(codes) <= {401, 429}, codes
    assert codes[0] == 401
    assert 429 in codes, "30 guesses in a row from one address were not rate-limited"
