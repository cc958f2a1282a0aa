"""The TTL index's job, done by the operator when the server cannot hold that index.

The same rule as the seed's index (``created_at`` TTL, partial filter ``status:
terminated``): a terminated VM document goes once ``created_at`` is older than the
retention. A pass deletes in batches of at most ``batch_size`` documents (each batch
re-checks the rule, so a pass never removes a document the rule does not cover) and stops
after ``max_batches``; the rest waits for the next pass. Running it twice, or from two
operators at once, deletes nothing twice: it is idempotent.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pymongo.errors import PyMongoError

from gamevm.mirror.writes import Collection
from gamevm.models.enums import VMStatus

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCHES: Final = 100


def expired_filter(now: datetime, retention_seconds: int) -> dict[str, Any]:
    """What the TTL index would remove at ``now``."""
    return {
        "status": VMStatus.TERMINATED.value,
        "created_at": {"$lt": now - timedelta(seconds=retention_seconds)},
    }


async def purge_batch(
    collection: Collection, now: datetime, retention_seconds: int, batch_size: int
) -> int:
    """Delete at most ``batch_size`` expired terminated documents; returns how many."""
    rule = expired_filter(now, retention_seconds)
    ids = [doc["_id"] async for doc in collection.find(rule, {"_id": 1}).limit(batch_size)]
    if not ids:
        return 0
    result = await collection.delete_many({"_id": {"$in": ids}, **rule})
    return result.deleted_count


async def purge_expired(
    collection: Collection,
    now: datetime,
    retention_seconds: int,
    *,
    batch_size: int,
    max_batches: int = DEFAULT_MAX_BATCHES,
) -> int:
    """One pass: batches until none is full or ``max_batches`` ran; returns the total."""
    total = 0
    for _ in range(max_batches):
        deleted = await purge_batch(collection, now, retention_seconds, batch_size)
        total += deleted
        if deleted < batch_size:
            break
    return total


class Purger:
    """Runs ``purge_expired`` every ``interval`` seconds while the server cannot expire."""

    def __init__(
        self,
        collection: Callable[[], Collection],
        retention_seconds: int,
        *,
        interval: float,
        batch_size: int,
        on_purged: Callable[[int], None],
    ) -> None:
        self._collection = collection
        self._retention_seconds = retention_seconds
        self.interval = interval
        self._batch_size = batch_size
        self._on_purged = on_purged

    async def once(self) -> int:
        """One pass now; raises PyMongoError when MongoDB is away."""
        deleted = await purge_expired(
            self._collection(),
            datetime.now(UTC),
            self._retention_seconds,
            batch_size=self._batch_size,
        )
        if deleted:
            log.info("mirror: purged %d terminated VM documents past the retention", deleted)
        self._on_purged(deleted)
        return deleted

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except PyMongoError as exc:
                log.warning("mirror: purge failed (%s); next pass in %g s", exc, self.interval)
            await asyncio.sleep(self.interval)
