"""What the mirror needs from the MongoDB-compatible server, checked with PyMongo's async client.

Runs on SecantusDB and on FerretDB 1.24.2 over PostgreSQL (tests/fixtures/mongo.py); every
test here must also pass on real MongoDB (GAMEVM_MONGO_BIN=/path/to/mongod). Where a server
lacks a feature (EXPECTED_CAPABILITIES), the test checks that it refuses it plainly, so the
mirror's probe sees the gap and degrades (tests/e2e/test_mirror_degraded.py).
"""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure

from gamevm.mirror.errors import is_retryable
from gamevm.mirror.ordering import not_newer_than
from tests.fixtures.mongo import EXPECTED_CAPABILITIES, ON_EVERY_MONGO_SERVER, MongoServer

pytestmark = [pytest.mark.e2e, ON_EVERY_MONGO_SERVER]

Client = AsyncMongoClient[dict[str, Any]]


def _collection(client: Client, db: str) -> AsyncCollection[dict[str, Any]]:
    return client[db]["vm_instances"]


async def _indexes(col: AsyncCollection[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {ix["name"]: dict(ix) async for ix in await col.list_indexes()}


async def test_unique_index_refuses_duplicates(mongo_client: Client, mongo_db_name: str) -> None:
    col = _collection(mongo_client, mongo_db_name)
    await col.create_index([("vm_id", ASCENDING)], unique=True, name="vm_id_unique")
    await col.insert_one({"vm_id": "a"})
    with pytest.raises(DuplicateKeyError):
        await col.insert_one({"vm_id": "a"})
    assert (await _indexes(col))["vm_id_unique"]["unique"] is True
    assert await col.count_documents({}) == 1


async def test_compound_index_is_listed(mongo_client: Client, mongo_db_name: str) -> None:
    col = _collection(mongo_client, mongo_db_name)
    name = await col.create_index([("status", ASCENDING), ("user_id", ASCENDING)])
    assert dict((await _indexes(col))[name]["key"]) == {"status": 1, "user_id": 1}


async def _wait_for_ttl_pass(client: Client, col: AsyncCollection[dict[str, Any]]) -> None:
    """Until a TTL pass removed the expired document (at most ~90 s).

    SecantusDB sweeps every 60 s and runs a pass on request; the fixture starts mongod with
    ttlMonitorSleepSecs=1, where the command is unknown and the wait is short anyway.
    """
    deadline = asyncio.get_running_loop().time() + 90
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(OperationFailure):
            await client.admin.command("secantusAdmin.pruneTtl")
        if await col.find_one({"vm_id": "gone"}) is None:
            return
        await asyncio.sleep(0.5)


async def test_ttl_index_with_partial_filter(
    mongo_client: Client, mongo_db_name: str, mongo_server: MongoServer
) -> None:
    col = _collection(mongo_client, mongo_db_name)
    if not EXPECTED_CAPABILITIES[mongo_server.kind].expiry_by_server:
        # Refused with a final error (not "try again"), so the mirror's probe degrades.
        for option in (
            {"expireAfterSeconds": 5},
            {"partialFilterExpression": {"status": "terminated"}},
        ):
            with pytest.raises(OperationFailure) as refused:
                await col.create_index([("created_at", ASCENDING)], **option)
            assert not is_retryable(refused.value)
        assert "created_at_1" not in await _indexes(col)
        return
    for _ in range(2):  # idempotent: the same spec twice is not an error
        await col.create_index(
            [("created_at", ASCENDING)],
            name="created_at_ttl",
            expireAfterSeconds=5,
            partialFilterExpression={"status": "terminated"},
        )
    index = (await _indexes(col))["created_at_ttl"]
    assert index["expireAfterSeconds"] == 5
    assert dict(index["partialFilterExpression"]) == {"status": "terminated"}

    old = datetime.now(UTC) - timedelta(hours=1)
    await col.insert_many(
        [
            {"vm_id": "gone", "status": "terminated", "created_at": old},
            {"vm_id": "kept", "status": "running", "created_at": old},
        ]
    )
    await _wait_for_ttl_pass(mongo_client, col)
    remaining = sorted([doc["vm_id"] async for doc in col.find({})])
    assert remaining == ["kept"]


async def test_tz_aware_datetime_round_trip(mongo_client: Client, mongo_db_name: str) -> None:
    col = _collection(mongo_client, mongo_db_name)
    # BSON dates have millisecond precision.
    moment = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)
    await col.insert_one({"vm_id": "a", "created_at": moment})
    doc = await col.find_one({"vm_id": "a"})
    assert doc is not None
    assert doc["created_at"] == moment
    assert doc["created_at"].utcoffset() == timedelta(0)
    assert await col.count_documents({"created_at": {"$gte": moment}}) == 1


async def test_upsert_with_set(mongo_client: Client, mongo_db_name: str) -> None:
    col = _collection(mongo_client, mongo_db_name)
    first = await col.update_one(
        {"vm_id": "a"},
        {"$set": {"status": "creating"}, "$setOnInsert": {"created_at": datetime.now(UTC)}},
        upsert=True,
    )
    assert first.upserted_id is not None
    second = await col.update_one({"vm_id": "a"}, {"$set": {"status": "running"}}, upsert=True)
    assert second.upserted_id is None
    assert second.modified_count == 1
    doc = await col.find_one({"vm_id": "a"}, {"_id": 0})
    assert doc is not None
    assert doc["status"] == "running"
    assert "created_at" in doc


async def test_stale_write_guard_filters(mongo_client: Client, mongo_db_name: str) -> None:
    """The mirror's guarded upsert: match only an older version, else the unique key refuses."""
    col = _collection(mongo_client, mongo_db_name)
    await col.create_index([("vm_id", ASCENDING)], unique=True)

    async def guarded(version: int, status: str) -> str:
        try:
            result = await col.update_one(
                {"vm_id": "a", "source_version": {"$lt": version}},
                {"$set": {"source_version": version, "status": status}},
                upsert=True,
            )
        except DuplicateKeyError:
            return "stale"
        return "inserted" if result.upserted_id is not None else "updated"

    assert await guarded(10, "creating") == "inserted"
    assert await guarded(12, "running") == "updated"
    assert await guarded(11, "creating") == "stale"
    assert await guarded(12, "error") == "stale"
    doc = await col.find_one({"vm_id": "a"})
    assert doc is not None
    assert (doc["source_version"], doc["status"]) == (12, "running")

    await col.insert_many([{"vm_id": "b", "status": "stopped"}, {"vm_id": "c", "status": "x"}])
    orphans = [d["vm_id"] async for d in col.find({"vm_id": {"$nin": ["a"]}}).sort("vm_id")]
    assert orphans == ["b", "c"]
    assert (
        await col.count_documents({"status": {"$ne": "terminated"}, "vm_id": {"$in": ["b"]}}) == 1
    )
    deleted = await col.delete_many({"vm_id": {"$nin": ["a", "b"]}})
    assert deleted.deleted_count == 1


async def test_stamp_guard_matches_missing_and_older(
    mongo_client: Client, mongo_db_name: str
) -> None:
    """The mirror's order filter ($not/$gte) matches a missing stamp (documents of older
    operator versions) and lower stamps; equality on the opaque resourceVersion ($ne)."""
    col = _collection(mongo_client, mongo_db_name)
    await col.insert_many(
        [
            {"vm_id": "old", "source_version": "7"},
            {"vm_id": "low", "mirror_seq": 5, "source_version": "8"},
            {"vm_id": "high", "mirror_seq": 50, "source_version": "9"},
        ]
    )
    matched = sorted([doc["vm_id"] async for doc in col.find(not_newer_than(10))])
    assert matched == ["low", "old"]
    same = await col.count_documents({"vm_id": "low", "source_version": {"$ne": "8"}})
    assert same == 0
