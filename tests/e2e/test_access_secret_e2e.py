"""The access Secret against the real API server: a Secret that already holds the name
is never adopted (the create's 409 blocks the VM, nothing is provisioned); once it is
gone the operator creates its own, owned by the GameVM, and provisions."""

import asyncio
import base64
import json
import time
from typing import Any

import pytest
import yaml

from gamevm.services.reconcile import instance_name
from tests.fixtures.operator_env import GameVMs, OperatorUnderTest
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e


def _instances_named(op: OperatorUnderTest, name: str) -> list[dict[str, Any]]:
    listing = asyncio.run(op.tensordock.instances())
    return [i for i in listing["instances"] if i.get("name") == name]


def test_a_foreign_access_secret_is_never_adopted(
    gamevm_operator: OperatorUnderTest, gamevms: GameVMs, kubectl: Kubectl
) -> None:
    squatter = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "taken-access", "namespace": gamevms.namespace},
        "type": "Opaque",
        "stringData": {"heartbeat-token": "not-the-operators", "ssh-privatekey": "x"},
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(squatter))
    gamevms.apply("taken", autoStopTimeout=1800)

    def blocked(status: dict[str, Any]) -> bool:
        return any(
            c.get("reason") == "AccessSecretConflict" for c in status.get("conditions") or []
        )

    status = gamevms.wait("taken", blocked, timeout=60, what="Ready=False AccessSecretConflict")
    assert status["phase"] == "error"
    assert not status.get("providerInstanceId")
    uid = (gamevms.get("taken") or {})["metadata"]["uid"]
    time.sleep(2)
    assert _instances_named(gamevm_operator, instance_name(uid)) == [], "provisioned anyway"
    warnings = [e for e in gamevms.events("taken") if e["reason"] == "AccessSecretConflict"]
    assert warnings
    assert warnings[0]["type"] == "Warning"
    secret = json.loads(
        kubectl("get", "secret", "taken-access", "-o", "json", namespace=gamevms.namespace).stdout
    )
    assert "ownerReferences" not in secret["metadata"], "the foreign Secret was changed"
    assert base64.b64decode(secret["data"]["heartbeat-token"]) == b"not-the-operators"

    # Freed: the operator creates its own Secret, owned by this GameVM, and provisions.
    kubectl("delete", "secret", "taken-access", namespace=gamevms.namespace)
    gamevms.annotate("taken", "example.com/nudge=1")  # wakes the VM now, not at the retry
    gamevms.wait_phase("taken", "running", timeout=90)
    secret = json.loads(
        kubectl("get", "secret", "taken-access", "-o", "json", namespace=gamevms.namespace).stdout
    )
    (owner,) = secret["metadata"]["ownerReferences"]
    assert owner["kind"] == "GameVM"
    assert owner["uid"] == uid
    assert len(_instances_named(gamevm_operator, instance_name(uid))) == 1
    gamevms.delete("taken")
    gamevms.wait_gone("taken", timeout=60)
