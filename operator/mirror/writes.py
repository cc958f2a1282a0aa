"""Guarded upserts: an older object version never overwrites a newer document.

Each write matches only a stored document with a lower ``source_version`` (the object's
resourceVersion) and upserts otherwise. When a newer document exists the upsert tries an
insert and the unique index refuses it (DuplicateKeyError): that write was stale. The same
error also comes from a race where a concurrent writer inserted first; a second, plain
update with the same guard tells the two apart.

Terminated is final for a vm_id (a recreated GameVM has a new uid): live updates never
match a terminated document.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gamevm.mirror.documents import bson_value, stored_fields
from gamevm.models.documents import EmulatorConfigDocument, VMDocument
from gamevm.models.enums import VMStatus

Collection = AsyncCollection[dict[str, Any]]
_TERMINATED = VMStatus.TERMINATED.value


class Outcome(StrEnum):
    """What a guarded write did."""

    WRITTEN = "written"
    STALE = "stale"


async def _guarded_upsert(
    collection: Collection, guard: dict[str, Any], fields: dict[str, Any]
) -> Outcome:
    try:
        await collection.update_one(guard, {"$set": fields}, upsert=True)
    except DuplicateKeyError:
        retry = await collection.update_one(guard, {"$set": fields})
        return Outcome.WRITTEN if retry.matched_count else Outcome.STALE
    return Outcome.WRITTEN


async def write_vm(collection: Collection, document: VMDocument) -> Outcome:
    """Upsert a live VM document unless the stored one is newer or terminated."""
    guard = {
        "vm_id": document.vm_id,
        "source_version": {"$lt": document.source_version},
        "status": {"$ne": _TERMINATED},
    }
    return await _guarded_upsert(collection, guard, stored_fields(document))


async def write_vm_terminated(collection: Collection, document: VMDocument) -> Outcome:
    """Mark a VM terminated with its last known fields (kept until the TTL index expires it)."""
    fields = stored_fields(document.model_copy(update={"status": VMStatus.TERMINATED}))
    guard = {
        "vm_id": document.vm_id,
        "source_version": {"$lte": document.source_version},
        "status": {"$ne": _TERMINATED},
    }
    outcome = await _guarded_upsert(collection, guard, fields)
    if outcome is Outcome.WRITTEN:
        return outcome
    # The stored document is newer than the deleted object we saw: keep its fields, end it.
    return await mark_vm_terminated(collection, document.vm_id, document.updated_at)


async def mark_vm_terminated(collection: Collection, vm_id: str, when: datetime) -> Outcome:
    """Terminate an existing document by id (no-op when missing or already terminated)."""
    result = await collection.update_one(
        {"vm_id": vm_id, "status": {"$ne": _TERMINATED}},
        {"$set": {"status": _TERMINATED, "updated_at": bson_value(when)}},
    )
    return Outcome.WRITTEN if result.matched_count else Outcome.STALE


async def write_config(collection: Collection, document: EmulatorConfigDocument) -> Outcome:
    """Upsert an EmulatorConfig document unless the stored one is newer."""
    guard = {
        "console_type": document.console_type.value,
        "source_version": {"$lt": document.source_version},
    }
    return await _guarded_upsert(collection, guard, stored_fields(document))


async def delete_config(
    collection: Collection, console_type: str, source_version: int | None
) -> Outcome:
    """Remove a deleted EmulatorConfig's document unless a newer config replaced it."""
    query: dict[str, Any] = {"console_type": console_type}
    if source_version is not None:
        query["source_version"] = {"$lte": source_version}
    result = await collection.delete_one(query)
    return Outcome.WRITTEN if result.deleted_count else Outcome.STALE
