"""Guarded writes: a change never overwrites a document written from a later delivery.

Each write carries the change's delivery stamp (see ordering.py) and matches only a stored
document with a lower stamp; it upserts otherwise. When a later document exists the upsert
tries an insert and the unique index refuses it (DuplicateKeyError): that write was stale.
The same error also comes from a race where a concurrent writer inserted first; a second,
plain update with the same guard tells the two apart.

``source_version`` (the object's resourceVersion) is compared for equality only: a stored
document of the same object version is not written again, so a re-delivered event costs
no write.

Terminated is final for a vm_id (a recreated GameVM has a new uid): live updates never
match a terminated document.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from gamevm.mirror.documents import ORPHANED, bson_value, stored_fields
from gamevm.mirror.ordering import SEQ_FIELD, not_newer_than
from gamevm.models.documents import EmulatorConfigDocument, VMDocument
from gamevm.models.enums import VMStatus

Collection = AsyncCollection[dict[str, Any]]
_TERMINATED = VMStatus.TERMINATED.value


class Outcome(StrEnum):
    """What a guarded write did."""

    WRITTEN = "written"
    STALE = "stale"


async def _guarded_upsert(
    collection: Collection,
    key: dict[str, Any],
    guard: dict[str, Any],
    fields: dict[str, Any],
    seq: int,
    *,
    unique: bool = True,
) -> Outcome:
    update = {"$set": {**fields, SEQ_FIELD: seq}}
    if not unique:
        # No unique index to refuse the insert of a stale upsert: look before inserting.
        result = await collection.update_one({**key, **guard}, update)
        if result.matched_count:
            return Outcome.WRITTEN
        if await collection.find_one(key, {"_id": 1}) is not None:
            return Outcome.STALE
        await collection.insert_one({**fields, SEQ_FIELD: seq})
        return Outcome.WRITTEN
    guard = {**key, **guard}
    try:
        await collection.update_one(guard, update, upsert=True)
    except DuplicateKeyError:
        retry = await collection.update_one(guard, update)
        return Outcome.WRITTEN if retry.matched_count else Outcome.STALE
    return Outcome.WRITTEN


async def write_vm(
    collection: Collection, document: VMDocument, seq: int, *, unique: bool = True
) -> Outcome:
    """Upsert a live VM document unless the stored one is later, the same version or ended."""
    guard = {
        **not_newer_than(seq),
        "source_version": {"$ne": document.source_version},
        "status": {"$ne": _TERMINATED},
    }
    key = {"vm_id": document.vm_id}
    return await _guarded_upsert(
        collection, key, guard, stored_fields(document), seq, unique=unique
    )


async def write_vm_terminated(
    collection: Collection, document: VMDocument, seq: int, *, unique: bool = True
) -> Outcome:
    """Mark a VM terminated with its last known fields (kept until the retention ends).

    A GameVM deleted with deletionPolicy Orphan left its instance running: its document
    stays live (not terminated, so never purged) with `provider_metadata.orphaned`.
    """
    if document.provider_metadata.get(ORPHANED) is True:
        return await write_vm(collection, document, seq, unique=unique)
    fields = stored_fields(document.model_copy(update={"status": VMStatus.TERMINATED}))
    guard = {**not_newer_than(seq), "status": {"$ne": _TERMINATED}}
    key = {"vm_id": document.vm_id}
    outcome = await _guarded_upsert(collection, key, guard, fields, seq, unique=unique)
    if outcome is Outcome.WRITTEN:
        return outcome
    # The stored document is later than the deleted object we saw: keep its fields, end it.
    return await mark_vm_terminated(collection, document.vm_id, document.updated_at)


async def mark_vm_terminated(
    collection: Collection, vm_id: str, when: datetime, *, seq_at_most: int | None = None
) -> Outcome:
    """Terminate an existing document by id (no-op when missing or already terminated);
    with ``seq_at_most`` only one not written from a later delivery (resync's orphans).

    An orphaned instance's document is never terminated: the instance still exists.
    """
    guard: dict[str, Any] = {
        "vm_id": vm_id,
        "status": {"$ne": _TERMINATED},
        f"provider_metadata.{ORPHANED}": {"$ne": True},
    }
    if seq_at_most is not None:
        guard.update(not_newer_than(seq_at_most + 1))
    result = await collection.update_one(
        guard,
        {"$set": {"status": _TERMINATED, "updated_at": bson_value(when)}},
    )
    return Outcome.WRITTEN if result.matched_count else Outcome.STALE


async def write_config(
    collection: Collection, document: EmulatorConfigDocument, seq: int, *, unique: bool = True
) -> Outcome:
    """Upsert an EmulatorConfig document unless the stored one is later or the same version."""
    guard = {**not_newer_than(seq), "source_version": {"$ne": document.source_version}}
    key = {"console_type": document.console_type.value}
    return await _guarded_upsert(
        collection, key, guard, stored_fields(document), seq, unique=unique
    )


async def delete_config(collection: Collection, console_type: str, seq: int) -> Outcome:
    """Remove a deleted EmulatorConfig's document unless a later config replaced it."""
    result = await collection.delete_one({"console_type": console_type, **not_newer_than(seq)})
    return Outcome.WRITTEN if result.deleted_count else Outcome.STALE
