"""The mirror's counters, shared by its parts and read by metrics and health."""

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from gamevm.mirror.resync import ResyncReport

LATENCY_SAMPLES: Final = 10_000


@dataclass
class MirrorStats:
    """Counters for metrics and health (read ``Mirror.stats``)."""

    pending: int = 0
    writes: int = 0
    stale_skipped: int = 0
    failures: int = 0
    dropped: int = 0
    resyncs: int = 0
    purged: int = 0
    connected: bool = False
    indexes_ready: bool = False
    ttl_index: bool = False
    last_success: datetime | None = None
    last_failure: str | None = None
    lag_seconds: float = 0.0
    last_resync: ResyncReport | None = None
    write_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    enqueue_to_ack_seconds: deque[float] = field(
        default_factory=lambda: deque(maxlen=LATENCY_SAMPLES)
    )
