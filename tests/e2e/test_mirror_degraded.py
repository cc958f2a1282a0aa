"""The mirror on a server without TTL or partial indexes (FerretDB): detected, reported,
and terminated VMs still go on time because the operator purges them."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from gamevm import metrics
from gamevm.mirror.mapping import vm_document_from
from gamevm.mirror.purge import purge_batch, purge_expired
from gamevm.mirror.repository import Mirror
from gamevm.mirror.writes import Outcome, write_vm
from gamevm.models.documents import VM_COLLECTION, VMDocument
from gamevm.models.enums import VMStatus
from tests.fixtures.mongo import (
    EXPECTED_CAPABILITIES,
    FERRETDB,
    ON_EVERY_MONGO_SERVER,
    MongoServer,
    gamevm_body,
    on_mongo_servers,
)

pytestmark = pytest.mark.e2e

Client = AsyncMongoClient[dict[str, Any]]
RETENTION = 4  # seconds
PURGE_INTERVAL = 0.5


def _vm(uid: str, created_at: datetime, phase: str = "running") -> VMDocument:
    document = vm_document_from(gamevm_body(uid, name=uid, phase=phase))
    assert document is not None
    return document.model_copy(update={"created_at": created_at})


async def _started(mirror: Mirror) -> Mirror:
    await mirror.start()
    async with asyncio.timeout(60):  # the probe and indexes, slower on a loaded machine
        while not mirror.stats.indexes_ready:
            await asyncio.sleep(0.05)
    return mirror


@pytest.fixture
async def short_retention_mirror(
    mongo_server: MongoServer, mongo_db_name: str
) -> AsyncIterator[Mirror]:
    mirror = Mirror(
        mongo_server.uri,
        mongo_db_name,
        timeout_ms=1000,
        retention_seconds=RETENTION,
        purge_interval=PURGE_INTERVAL,
        purge_batch=2,
    )
    yield await _started(mirror)
    await mirror.aclose()


def _gauge(capability: str) -> float:
    value = metrics.REGISTRY.get_sample_value("gamevm_mirror_degraded", {"capability": capability})
    assert value is not None
    return value


@ON_EVERY_MONGO_SERVER
async def test_capabilities_detected_and_reported(
    mongo_server: MongoServer, mongo_db_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    expected = EXPECTED_CAPABILITIES[mongo_server.kind]
    caplog.set_level(logging.WARNING, logger="gamevm.mirror")
    mirror = await _started(Mirror(mongo_server.uri, mongo_db_name, timeout_ms=1000))
    try:
        found = mirror.capabilities
        assert found is not None
        assert [c.value for c in found.missing] == [c.value for c in expected.missing]
        for capability in ("ttl", "partial_filter", "unique"):
            assert _gauge(capability) == (capability in {c.value for c in found.missing})
        lines = [r.getMessage() for r in caplog.records if "mirror degraded" in r.getMessage()]
        assert len(lines) == len(expected.missing)  # one line per missing capability
        assert len(mirror.degradations) == len(expected.missing)
        assert mirror.purging is not expected.expiry_by_server
    finally:
        await mirror.aclose()


@on_mongo_servers(FERRETDB)
async def test_terminated_documents_removed_on_time_without_ttl(
    short_retention_mirror: Mirror, mongo_client: Client, mongo_db_name: str
) -> None:
    """FerretDB has no TTL index: the operator's purge removes terminated VMs once
    created_at is older than the retention (within one purge interval), and nothing else."""
    mirror = short_retention_mirror
    assert mirror.capabilities is not None
    assert not mirror.capabilities.ttl
    now = datetime.now(UTC)
    long_ago = now - timedelta(days=1)
    for n in range(5):  # already expired: more than one batch (2)
        mirror.enqueue_vm_terminated(_vm(f"old-{n}", long_ago))
    mirror.enqueue_vm(_vm("live-old", long_ago))  # live VMs never expire
    mirror.enqueue_vm_terminated(_vm("fresh", now))  # expires RETENTION s from now
    await mirror.flush()
    collection = mongo_client[mongo_db_name][VM_COLLECTION]

    async def remaining() -> set[str]:
        return {doc["vm_id"] async for doc in collection.find({}, {"vm_id": 1})}

    async with asyncio.timeout(RETENTION):  # the expired ones go well before "fresh" does
        while await remaining() != {"live-old", "fresh"}:
            await asyncio.sleep(0.1)
    assert (await collection.find_one({"vm_id": "fresh"})) is not None
    async with asyncio.timeout(RETENTION + PURGE_INTERVAL + 3):
        while "fresh" in await remaining():
            await asyncio.sleep(0.1)
    gone_after = (datetime.now(UTC) - now).total_seconds()
    assert gone_after >= RETENTION  # never early
    assert await remaining() == {"live-old"}
    assert mirror.stats.purged == 6
    print(f"\npurge: terminated VM gone {gone_after:.2f} s after creation")


@ON_EVERY_MONGO_SERVER
async def test_purge_is_bounded_and_idempotent(mongo_client: Client, mongo_db_name: str) -> None:
    collection = mongo_client[mongo_db_name][VM_COLLECTION]
    now = datetime.now(UTC)
    old = now - timedelta(days=2)
    docs = [{"vm_id": f"t-{n}", "status": "terminated", "created_at": old} for n in range(7)]
    docs += [
        {"vm_id": "running", "status": VMStatus.RUNNING.value, "created_at": old},
        {"vm_id": "recent", "status": "terminated", "created_at": now},
    ]
    await collection.insert_many(docs)
    assert await purge_batch(collection, now, 3600, batch_size=3) == 3  # bounded
    assert await purge_expired(collection, now, 3600, batch_size=3, max_batches=1) == 3
    # Two passes at once: each document goes once, no error.
    both = await asyncio.gather(
        purge_expired(collection, now, 3600, batch_size=3),
        purge_expired(collection, now, 3600, batch_size=3),
    )
    assert sum(both) == 1
    assert await purge_expired(collection, now, 3600, batch_size=3) == 0  # idempotent
    left = sorted([doc["vm_id"] async for doc in collection.find({})])
    assert left == ["recent", "running"]


async def test_capability_probe_leaves_no_trace(
    mongo_server: MongoServer, mongo_client: Client, mongo_db_name: str
) -> None:
    started = time.monotonic()
    mirror = await _started(Mirror(mongo_server.uri, mongo_db_name, timeout_ms=1000))
    await mirror.aclose()
    names = await mongo_client[mongo_db_name].list_collection_names()
    assert "gamevm_capability_probe" not in names
    assert time.monotonic() - started < 15


@ON_EVERY_MONGO_SERVER
async def test_writes_without_unique_index(mongo_client: Client, mongo_db_name: str) -> None:
    """The no-unique-index path (Cosmos DB refuses unique indexes on a non-empty
    collection): look before insert, so a stale or repeated write adds no duplicate."""
    collection = mongo_client[mongo_db_name][VM_COLLECTION]
    when = datetime.now(UTC)
    first = _vm("u-1", when).model_copy(update={"source_version": "a"})
    later = first.model_copy(update={"source_version": "b", "ip_address": "10.0.0.2"})
    assert await write_vm(collection, first, 10, unique=False) is Outcome.WRITTEN
    assert await write_vm(collection, later, 20, unique=False) is Outcome.WRITTEN
    assert await write_vm(collection, first, 15, unique=False) is Outcome.STALE  # older
    assert await write_vm(collection, later, 30, unique=False) is Outcome.STALE  # same version
    stored = [doc async for doc in collection.find({"vm_id": "u-1"})]
    assert len(stored) == 1
    assert stored[0]["source_version"] == "b"
