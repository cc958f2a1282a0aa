"""What the MongoDB-compatible server can do for the mirror, found out at start.

The seed's indexes need three things: unique indexes (vm_id, console_type), TTL indexes
(terminated VMs expire) and partial filters (only terminated VMs expire). MongoDB has all
three; FerretDB 1.x refuses TTL and partial filters ("not implemented yet"), Cosmos DB for
MongoDB (RU) allows TTL only on `_ts` (docs/mongodb-compat.md). The probe creates each kind
of index on a scratch collection, checks that the server kept its options (a server that
accepts an option and drops it silently counts as missing) and that a unique index refuses
a duplicate, then drops the scratch collection.

For each missing capability the mirror logs one line saying what it does instead (see
``Degradation``), sets ``gamevm_mirror_degraded{capability=...}`` to 1 and the operator
posts a ``MirrorDegraded`` Event.
"""

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from gamevm.mirror.errors import is_retryable

log = logging.getLogger(__name__)

PROBE_COLLECTION: Final = "gamevm_capability_probe"


class Capability(StrEnum):
    """A server feature the seed's indexes rely on."""

    TTL = "ttl"
    PARTIAL_FILTER = "partial_filter"
    UNIQUE = "unique"


@dataclass(frozen=True)
class Capabilities:
    """What the server supports, and which server it is (buildInfo)."""

    ttl: bool = True
    partial_filter: bool = True
    unique: bool = True
    server: str = "unknown"

    @property
    def missing(self) -> list[Capability]:
        flags = {
            Capability.TTL: self.ttl,
            Capability.PARTIAL_FILTER: self.partial_filter,
            Capability.UNIQUE: self.unique,
        }
        return [capability for capability, present in flags.items() if not present]

    @property
    def expiry_by_server(self) -> bool:
        """Whether the TTL index limited to terminated VMs can exist (needs both)."""
        return self.ttl and self.partial_filter


def workaround(capability: Capability, retention_seconds: int, purge_interval: float) -> str:
    """What the mirror does instead, in one sentence (logs, Events, docs)."""
    purge = (
        f"the operator deletes terminated VM documents older than {retention_seconds} s "
        f"itself, every {purge_interval:g} s in bounded batches"
    )
    if capability is Capability.TTL:
        return f"no TTL indexes: {purge}"
    if capability is Capability.PARTIAL_FILTER:
        return f"no partial indexes (a TTL index would expire live VMs too): {purge}"
    return (
        "no unique indexes: writes look a document up before inserting it, so two operator "
        "replicas writing at once could duplicate a vm_id (run one replica)"
    )


def _refused(exc: OperationFailure) -> bool:
    """The server says "not supported" (as opposed to "not now")."""
    return not is_retryable(exc)


async def _index_kept(
    database: AsyncDatabase[dict[str, Any]], name: str, option: str, **options: Any
) -> bool:
    collection = database[PROBE_COLLECTION]
    try:
        await collection.create_index([(name, ASCENDING)], name=name, **options)
    except OperationFailure as exc:
        if not _refused(exc):
            raise
        log.debug("capability probe: index option %s refused: %s", option, exc)
        return False
    indexes = {index["name"]: index async for index in await collection.list_indexes()}
    return option in indexes.get(name, {})


async def _unique_enforced(database: AsyncDatabase[dict[str, Any]]) -> bool:
    collection = database[PROBE_COLLECTION]
    if not await _index_kept(database, "u", "unique", unique=True):
        return False
    await collection.insert_one({"u": 1})
    try:
        await collection.insert_one({"u": 1})
    except DuplicateKeyError:
        return True
    return False


async def _server_name(database: AsyncDatabase[dict[str, Any]]) -> str:
    try:
        info = await database.client.admin.command("buildInfo")
    except OperationFailure:
        return "unknown"
    version = str(info.get("version", "?"))
    ferret = info.get("ferretdbVersion")
    return f"FerretDB {ferret} (reports {version})" if ferret else f"version {version}"


async def detect(database: AsyncDatabase[dict[str, Any]]) -> Capabilities:
    """Probe the server; raises PyMongoError when it is unreachable (retry later)."""
    await database.drop_collection(PROBE_COLLECTION)
    terminated = {"status": "terminated"}
    try:
        ttl = await _index_kept(database, "t", "expireAfterSeconds", expireAfterSeconds=3600)
        partial = await _index_kept(
            database, "p", "partialFilterExpression", partialFilterExpression=terminated
        )
        if ttl and partial:
            # The seed's index needs both on one index (some servers allow each alone only).
            partial = await _index_kept(
                database,
                "tp",
                "partialFilterExpression",
                expireAfterSeconds=3600,
                partialFilterExpression=terminated,
            )
        return Capabilities(
            ttl=ttl,
            partial_filter=partial,
            unique=await _unique_enforced(database),
            server=await _server_name(database),
        )
    finally:
        await database.drop_collection(PROBE_COLLECTION)
