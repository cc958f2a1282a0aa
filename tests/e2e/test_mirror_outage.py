"""MongoDB goes away while GameVMs are created, changed and deleted: nothing is lost."""

import asyncio
import time
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from gamevm.mirror.documents import seed_content, stored_fields
from gamevm.mirror.mapping import terminated_vm_document_from, vm_document_from
from gamevm.mirror.repository import Mirror
from gamevm.mirror.resync import ResyncSnapshot
from gamevm.models.documents import VM_COLLECTION, VMDocument
from tests.fixtures.mongo import ON_EVERY_MONGO_SERVER, MongoServer, gamevm_body

pytestmark = [pytest.mark.e2e, ON_EVERY_MONGO_SERVER]

Client = AsyncMongoClient[dict[str, Any]]
CONVERGE_TIMEOUT = 60.0
RETENTION = 10 * 365 * 24 * 3600  # the sample objects are dated 2026-11-26


def _doc(body: dict[str, Any]) -> VMDocument:
    document = vm_document_from(body)
    assert document is not None
    return document


def _terminated(body: dict[str, Any]) -> VMDocument:
    document = terminated_vm_document_from(body)
    assert document is not None
    return document


async def _wait_converged(client: Client, db: str, expected: dict[str, dict[str, Any]]) -> float:
    started = time.monotonic()
    collection = client[db][VM_COLLECTION]
    while time.monotonic() - started < CONVERGE_TIMEOUT:
        try:
            stored = {doc["vm_id"]: seed_content(doc) async for doc in collection.find({})}
        except Exception:  # noqa: BLE001 - the server is still coming up
            stored = {}
        if stored == expected:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    missing = set(expected) - set(stored)
    wrong = [key for key in expected if key in stored and stored[key] != expected[key]]
    raise AssertionError(f"not converged: missing {sorted(missing)}, differing {sorted(wrong)}")


def _mirror(server: MongoServer, db: str) -> Mirror:
    return Mirror(server.uri, db, timeout_ms=500, retention_seconds=RETENTION, retry_max_delay=1.0)


async def test_outage_create_change_delete_20_vms(
    mongo_server: MongoServer, mongo_client: Client, mongo_db_name: str
) -> None:
    mirror = _mirror(mongo_server, mongo_db_name)
    await mirror.start()
    expected: dict[str, dict[str, Any]] = {}
    try:
        # Five VMs exist before the outage.
        before = [gamevm_body(f"old-{n}", name=f"old{n}", resource_version=n + 1) for n in range(5)]
        for body in before:
            mirror.enqueue_vm_from(body)
        await mirror.flush()

        mongo_server.stop()
        enqueue_seconds: list[float] = []

        def enqueue(action: str, body: dict[str, Any]) -> None:
            started = time.perf_counter()
            if action == "delete":
                mirror.enqueue_vm_terminated_from(body)
            else:
                mirror.enqueue_vm_from(body)
            enqueue_seconds.append(time.perf_counter() - started)

        version = 1000
        for n in range(20):  # create, then three status changes each
            uid = f"vm-{n:02d}"
            for phase in ("creating", "configuring", "running", "stopped"):
                version += 1
                body = gamevm_body(uid, name=f"vm{n}", resource_version=version, phase=phase)
                enqueue("update", body)
                expected[uid] = stored_fields(_doc(body))
            await asyncio.sleep(0.01)
        for n in range(0, 20, 4):  # delete five of them
            uid = f"vm-{n:02d}"
            version += 1
            body = gamevm_body(uid, name=f"vm{n}", resource_version=version, phase="stopped")
            enqueue("delete", body)
            expected[uid] = stored_fields(_terminated(body))
        for n in range(len(before)):  # change the old ones, delete one
            version += 1
            changed = gamevm_body(
                f"old-{n}", name=f"old{n}", resource_version=version, phase="error"
            )
            if n == 0:
                enqueue("delete", changed)
                expected[f"old-{n}"] = stored_fields(_terminated(changed))
            else:
                enqueue("update", changed)
                expected[f"old-{n}"] = stored_fields(_doc(changed))

        await asyncio.sleep(1.5)  # let the writer fail and back off
        stats = mirror.stats
        assert stats.pending == 25
        assert not stats.connected
        assert stats.failures > 0
        assert max(enqueue_seconds) < 0.1  # CPU only: a wait for MongoDB would be >= 0.5 s

        restarted = time.monotonic()
        mongo_server.start()
        converge = await _wait_converged(mongo_client, mongo_db_name, expected)
        total = time.monotonic() - restarted
        print(
            f"\nmirror outage: 25 VMs ({len(enqueue_seconds)} changes) converged "
            f"{converge:.2f} s after the server answered ({total:.2f} s after restart began; "
            f"server start {mongo_server.startup_seconds:.2f} s); "
            f"failures while down: {stats.failures}"
        )
        # The documents can match before the queue is empty: a write that reached the
        # server as it came back may have failed on the client side and is retried (a
        # no-op now). The queue must still drain.
        await asyncio.wait_for(mirror.flush(), CONVERGE_TIMEOUT)
        assert mirror.stats.pending == 0
        assert mirror.stats.connected
    finally:
        if not mongo_server.running:
            mongo_server.start()
        await mirror.aclose()


async def test_operator_restart_during_outage_recovers_by_resync(
    mongo_server: MongoServer, mongo_client: Client, mongo_db_name: str
) -> None:
    """Pending changes die with the operator; the resync after start restores the state."""
    first = _mirror(mongo_server, mongo_db_name)
    await first.start()
    gone = gamevm_body("gone", resource_version=5)
    first.enqueue_vm_from(gone)
    await first.flush()
    await first.aclose()

    mongo_server.stop()
    try:
        bodies = [gamevm_body(f"r-{n}", resource_version=100 + n) for n in range(20)]
        documents = [_doc(body) for body in bodies]

        async def source() -> ResyncSnapshot:
            # A new listing per call, as from the API server (a retry lists again).
            return ResyncSnapshot.whole(documents, [])

        second = _mirror(mongo_server, mongo_db_name)
        second.set_resync_source(source)
        await second.start()
        await asyncio.sleep(1.0)
        started = time.monotonic()
        mongo_server.start()
        expected = {doc.vm_id: stored_fields(doc) for doc in documents}
        gone_doc = _doc(gone)
        expected["gone"] = {**stored_fields(gone_doc), "status": "terminated"}
        # The orphan's updated_at is set at resync time: compare it apart.
        collection = mongo_client[mongo_db_name][VM_COLLECTION]
        async with asyncio.timeout(CONVERGE_TIMEOUT):
            while True:
                try:
                    stored = {d["vm_id"]: seed_content(d) async for d in collection.find({})}
                except Exception:  # noqa: BLE001 - still starting
                    stored = {}
                if "gone" in stored:
                    expected["gone"]["updated_at"] = stored["gone"]["updated_at"]
                if stored == expected:
                    break
                await asyncio.sleep(0.05)
        print(f"\nmirror resync after restart: converged in {time.monotonic() - started:.2f} s")
        await second.aclose()
    finally:
        if not mongo_server.running:
            mongo_server.start()
