"""The mirror's client: one AsyncMongoClient, its collections, and whether MongoDB answers."""

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gamevm import metrics
from gamevm.mirror.stats import MirrorStats
from gamevm.mirror.writes import Collection
from gamevm.models.documents import EMULATOR_CONFIG_COLLECTION, VM_COLLECTION

log = logging.getLogger(__name__)

INITIAL_RETRY_DELAY: Final = 0.2


class Connection:
    """Creates the client lazily (no I/O until first use) and tracks reachability."""

    def __init__(
        self, uri: str, database: str, stats: MirrorStats, *, timeout_ms: int, max_delay: float
    ) -> None:
        self._uri = uri
        self._database_name = database
        self._timeout_ms = timeout_ms
        self._max_delay = max_delay
        self._stats = stats
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._on_reconnect: list[Callable[[], None]] = []

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever MongoDB answers again after a failure."""
        self._on_reconnect.append(callback)

    def client(self) -> AsyncMongoClient[dict[str, Any]]:
        if self._client is None:
            self._client = AsyncMongoClient(
                self._uri,
                tz_aware=True,
                appname="gamevm-operator",
                serverSelectionTimeoutMS=self._timeout_ms,
                connectTimeoutMS=self._timeout_ms,
                socketTimeoutMS=self._timeout_ms * 5,
            )
        return self._client

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self.client()[self._database_name]

    @property
    def vms(self) -> Collection:
        return self.db[VM_COLLECTION]

    @property
    def configs(self) -> Collection:
        return self.db[EMULATOR_CONFIG_COLLECTION]

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter."""
        delay: float = min(self._max_delay, INITIAL_RETRY_DELAY * 2.0**attempt)
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security

    def record_success(self) -> None:
        if not self._stats.connected:
            if self._stats.last_failure is not None:
                log.info("mirror: MongoDB reachable again")
                for callback in self._on_reconnect:
                    callback()
            self._stats.connected = True
        self._stats.last_success = datetime.now(UTC)

    def record_failure(self, exc: BaseException, what: str) -> None:
        metrics.count_mirror_failure(what)
        self._stats.failures += 1
        self._stats.last_failure = f"{what}: {type(exc).__name__}"
        if self._stats.connected or self._stats.failures == 1:
            log.warning("mirror: MongoDB unavailable (%s: %s); retrying", what, type(exc).__name__)
        self._stats.connected = False
