"""Where a TensorDock VM is, from its own configuration report.

TensorDock's instance list has no IP, and its limit is 100 requests/min: a per-VM
`GET /instances/{id}` doubles the requests a VM costs. The VM's authenticated report
comes from its address, so the operator probes Wolf there and asks the provider only
when the report carries no usable address. A report speaks only for its own VM and its
own connection: another VM's token, a forged token or an X-Forwarded-For header from a
peer nobody declared a proxy cannot set an address.
"""

import asyncio
import base64
import http.client
import ipaddress
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.operator_env import GameVMs, OperatorUnderTest, start_operator
from tests.fixtures.simulators import CloudyPadSimHandle, TensorDockSimHandle
from tests.fixtures.stack import Kubectl, OperatorProcess

pytestmark = pytest.mark.e2e

DETAIL = "GET /instances/{id}"


def _sim_vm(sim: TensorDockSimHandle, name: str) -> dict[str, Any]:
    listing = asyncio.run(sim.instances())
    (vm,) = [i for i in listing["instances"] if not i.get("deleted") and i["id"] == name]
    return vm


def _detail_gets(sim: TensorDockSimHandle, instance_id: str | None = None) -> int:
    """Detail GETs in all, or for one instance (an earlier test's GameVM, still being
    cleaned up by this operator, may cost some of its own)."""
    stats = asyncio.run(sim.stats())
    if instance_id is None:
        return int(stats["requests"].get(DETAIL, 0))
    return int(stats["requests_by_instance"].get(instance_id, {}).get(DETAIL, 0))


def _token(kubectl: Kubectl, namespace: str, gamevm: str) -> str:
    secret = json.loads(
        kubectl("get", "secret", f"{gamevm}-access", "-o", "json", namespace=namespace).stdout
    )
    return base64.b64decode(secret["data"]["heartbeat-token"]).decode()


def _report(
    port: int, path: str, token: str, source: str, headers: dict[str, str] | None = None
) -> int:
    """POST a ready report from `source` (a loopback address), as a VM there would."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    body = {"gamingEnvironmentReady": True, "gamesMounted": False, "message": "again"}
    try:
        connection.request(
            "POST",
            path,
            body=json.dumps(body),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_vm_runs_at_the_address_it_reported_from(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs
) -> None:
    gamevms.apply("here", autoStopTimeout=1800)
    status = gamevms.wait_phase("here", "running", timeout=60)
    vm = _sim_vm(gamevm_operator.tensordock, status["providerInstanceId"])
    assert vm["report"] == "sent 200"
    # The simulated VM has a dedicated (loopback) IP and reported from it.
    assert status["configuration"]["address"] == vm["address"] == status["ipAddress"]
    assert ipaddress.ip_address(status["ipAddress"]).is_loopback
    assert status["ipAddress"] != "127.0.0.1"
    instance_id = status["providerInstanceId"]
    assert _detail_gets(gamevm_operator.tensordock, instance_id) == 0, "no look for the IP"


def test_without_a_usable_reported_address_the_provider_is_asked(
    kubectl: Kubectl,
    operator_ns: str,
    operator_process: Callable[..., OperatorProcess],
    tensordock_sim: TensorDockSimHandle,
    cloudypad_sim: CloudyPadSimHandle,
    gamevms: GameVMs,
) -> None:
    # Behind a declared proxy that names no client, the report carries no address.
    start_operator(
        kubectl,
        operator_ns,
        operator_process,
        tensordock_sim,
        cloudypad_sim,
        {"GAMEVM_API_TRUSTED_PROXIES": '["127.0.0.0/8"]'},
    )
    gamevms.apply("there", autoStopTimeout=1800)
    status = gamevms.wait_phase("there", "running", timeout=60)
    assert status["configuration"]["ready"] is True
    assert "address" not in status["configuration"]
    vm = _sim_vm(tensordock_sim, status["providerInstanceId"])
    assert status["ipAddress"] == vm["address"], "the provider's address"
    assert _detail_gets(tensordock_sim) >= 1


def test_a_report_sets_only_its_own_vms_address_from_its_own_connection(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    gamevms.apply("first", autoStopTimeout=1800)
    gamevms.apply("second", autoStopTimeout=1800)
    first = gamevms.wait_phase("first", "running", timeout=60)
    gamevms.wait_phase("second", "running", timeout=60)
    address = first["configuration"]["address"]
    port = gamevm_operator.process.api_port
    path = f"/v1/gamevms/{gamevms.namespace}/first/configuration"
    ns = gamevms.namespace
    elsewhere = "127.9.9.9"
    # Another VM's token, or a made-up one, on this VM's path: refused, nothing stored.
    assert _report(port, path, _token(kubectl, ns, "second"), elsewhere) == 401
    assert _report(port, path, "forged-token", elsewhere) == 401
    status = gamevms.status("first")
    assert status["configuration"]["address"] == address
    assert status["configuration"]["message"] != "again"
    # The VM itself, with a header claiming another address: the connection wins (no
    # proxy is declared, so X-Forwarded-For proves nothing).
    token = _token(kubectl, ns, "first")
    assert _report(port, path, token, elsewhere, {"X-Forwarded-For": "203.0.113.9"}) == 200
    status = gamevms.wait(
        "first",
        lambda s: s.get("configuration", {}).get("message") == "again",
        timeout=10,
        what="the new report stored",
    )
    assert status["configuration"]["address"] == elsewhere
    assert "203.0.113.9" not in json.dumps(status)
