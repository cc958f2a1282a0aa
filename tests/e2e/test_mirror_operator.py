"""The mirror inside the real operator, against the real API server: field for field."""

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from pymongo import MongoClient

from gamevm.mirror.documents import seed_content, stored_fields
from gamevm.mirror.mapping import config_document_from, vm_document_from
from gamevm.mirror.ordering import SEQ_FIELD
from gamevm.models.documents import EMULATOR_CONFIG_COLLECTION, VM_COLLECTION
from tests.fixtures.chaos import MirroredOperator
from tests.fixtures.mongo import EXPECTED_CAPABILITIES, ON_EVERY_MONGO_SERVER
from tests.fixtures.operator_env import GameVMs
from tests.fixtures.stack import Kubectl
from tests.unit.test_models_support import SEED_VM_DOCUMENT_FIELDS

pytestmark = [pytest.mark.e2e, ON_EVERY_MONGO_SERVER]


def _stored(client: MongoClient[dict[str, Any]], db: str, vm_id: str) -> dict[str, Any] | None:
    stored = client[db][VM_COLLECTION].find_one({"vm_id": vm_id})
    return None if stored is None else seed_content(stored)


def test_gamevm_lifecycle_mirrored_field_for_field(
    mirrored_operator: MirroredOperator,
    gamevms: GameVMs,
    kubectl: Kubectl,
    cluster_reader_token: str,
) -> None:
    mongo = MongoClient(mirrored_operator.mongo.uri, tz_aware=True)
    db = mirrored_operator.database
    try:
        gamevms.apply(
            "mirrored",
            gameId="mario-odyssey",
            userId="user-mirror",
            userLocation={"latitude": 32.7767, "longitude": -96.7970},
            autoStopTimeout=1800,
        )
        gamevms.wait_phase("mirrored", "running", timeout=60)
        # Compare with the object the API server holds now; if it moved on while we looked,
        # look again (the status keeps changing: activity, Wolf probes). resourceVersion is
        # opaque: only "the same version" is checked, never "newer".
        deadline = time.monotonic() + 30
        while True:
            # As the operator's watch sees it: updated_at derives from managedFields times.
            body = gamevms.get("mirrored", managed_fields=True)
            assert body is not None
            expected = vm_document_from(body)
            assert expected is not None
            stored = _stored(mongo, db, expected.vm_id)
            if stored is not None and stored["source_version"] == expected.source_version:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"mirror never caught up with the GameVM: {stored}")
            time.sleep(0.2)
        assert stored == stored_fields(expected)  # every field, as stored
        for field in sorted(SEED_VM_DOCUMENT_FIELDS):
            assert field in stored, field
        assert stored["vm_id"] == body["metadata"]["uid"]
        assert stored["status"] == "running"
        assert stored["provider"] == "tensordock"
        # The simulated VM's dedicated (loopback) IP, as status has it.
        assert stored["ip_address"] == body["status"]["ipAddress"]
        assert stored["ip_address"].startswith("127.")
        assert stored["provider_instance_id"]
        assert stored["gaming_environment_ready"] is True
        assert stored["ssh_private_key"] is None
        assert stored["access_secret_name"] == "mirrored-access"
        assert stored["user_location"] == {"latitude": 32.7767, "longitude": -96.797}

        # The operator's read API serves it.
        port = mirrored_operator.op.process.api_port
        url = f"http://127.0.0.1:{port}/v1/vms/{expected.vm_id}/status"
        request = urllib.request.Request(url)
        request.add_header("Authorization", f"Bearer {cluster_reader_token}")
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            status = json.load(response)
        assert status["status"] == "running"
        assert status["gaming_environment_ready"] is True

        # No value of the VM's access Secret is in any document.
        secret = json.loads(
            kubectl(
                "get", "secret", "mirrored-access", "-o", "json", namespace=gamevms.namespace
            ).stdout
        )
        dumped = json.dumps(list(mongo[db][VM_COLLECTION].find({}, {"_id": 0})), default=str)
        for value in secret["data"].values():
            assert value not in dumped

        # The config is mirrored too.
        config_body = json.loads(kubectl("get", "emucfg", "switch", "-o", "json").stdout)
        config = mongo[db][EMULATOR_CONFIG_COLLECTION].find_one({"console_type": "switch"})
        assert config is not None
        assert seed_content(config) == stored_fields(config_document_from(config_body))

        _assert_degradation_reported(
            mirrored_operator, kubectl, mirrored_operator.op.process.http_port
        )

        gamevms.delete("mirrored")
        gamevms.wait_gone("mirrored", timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            final = mongo[db][VM_COLLECTION].find_one({"vm_id": expected.vm_id})
            if final is not None and final["status"] == "terminated":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("deleted GameVM not terminated in the mirror")
    finally:
        mongo.close()


def _assert_degradation_reported(
    mirrored_operator: MirroredOperator, kubectl: Kubectl, port: int
) -> None:
    """A server without TTL or partial indexes is reported: gauge, log line, Event."""
    kind = mirrored_operator.mongo.kind
    expected_missing = {c.value for c in EXPECTED_CAPABILITIES[kind].missing}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    for capability in ("ttl", "partial_filter", "unique"):
        value = 1.0 if capability in expected_missing else 0.0
        assert f'gamevm_mirror_degraded{{capability="{capability}"}} {value}' in exposition
    log = mirrored_operator.op.process.log_text()
    assert log.count("mirror degraded on") == len(expected_missing)
    if not expected_missing:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = json.loads(
            kubectl(
                "get", "events", "-A", "--field-selector", "reason=MirrorDegraded", "-o", "json"
            ).stdout
        )["items"]  # fmt: skip
        told = [e for e in events if e["involvedObject"]["kind"] == "EmulatorConfig"]
        if any("no TTL indexes" in e["message"] for e in told):
            return
        time.sleep(0.5)
    raise AssertionError("no MirrorDegraded Event on the EmulatorConfigs")


@pytest.fixture
def paged_resync_operator(mirrored_starter: Callable[..., MirroredOperator]) -> MirroredOperator:
    """The mirrored operator listing GameVMs two at a time, resyncing every 2 s."""
    return mirrored_starter(
        {"GAMEVM_MIRROR_RESYNC_PAGE_SIZE": "2", "GAMEVM_MIRROR_RESYNC_INTERVAL": "2"}
    )


def test_resync_in_pages_restores_every_page_and_ends_only_orphans(
    paged_resync_operator: MirroredOperator, gamevms: GameVMs
) -> None:
    """The periodic resync lists GameVMs in pages (GAMEVM_MIRROR_RESYNC_PAGE_SIZE): VMs on
    every page come back when their documents are lost, and a VM on a later page is no
    orphan of an earlier one; a document of no listed VM becomes terminated."""
    mongo = MongoClient(paged_resync_operator.mongo.uri, tz_aware=True)
    vms = mongo[paged_resync_operator.database][VM_COLLECTION]
    names = [f"paged-{n}" for n in range(5)]
    try:
        for name in names:
            gamevms.apply(name, gameId="mario-odyssey", userId=f"user-{name}")
        uids = {}
        for name in names:
            gamevms.wait_phase(name, "running", timeout=90)
            body = gamevms.get(name)
            assert body is not None
            uids[name] = body["metadata"]["uid"]
        _wait_for(lambda: all(vms.find_one({"vm_id": uid}) for uid in uids.values()), "mirrored")
        # Lose every document of these VMs, and leave one of a VM no page lists.
        model = vms.find_one({"vm_id": uids[names[0]]}, {"_id": 0})
        assert model is not None
        vms.delete_many({"vm_id": {"$in": list(uids.values())}})
        ghost = {**model, "vm_id": "ghost", "status": "running"}
        ghost.pop(SEQ_FIELD, None)
        vms.insert_one(ghost)
        _wait_for(
            lambda: all(
                (doc := vms.find_one({"vm_id": uid})) is not None and doc["status"] == "running"
                for uid in uids.values()
            ),
            "every page's VMs back from the resync",
        )
        _wait_for(
            lambda: (vms.find_one({"vm_id": "ghost"}) or {}).get("status") == "terminated",
            "the unlisted VM terminated",
        )
        for uid in uids.values():  # no later page's VM was taken for an orphan meanwhile
            doc = vms.find_one({"vm_id": uid})
            assert doc is not None
            assert doc["status"] == "running"
    finally:
        mongo.close()


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout:.0f} s")
        time.sleep(0.2)
