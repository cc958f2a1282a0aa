"""Per-source token buckets: the heartbeat endpoint faces VMs on the internet."""

import time
from collections import OrderedDict
from collections.abc import Callable


class SourceRateLimiter:
    """`rate` requests per second per source, bursts up to `burst`.

    At most `max_sources` buckets are kept (least recently seen dropped first), so a flood
    from many addresses costs bounded memory; a dropped source simply starts full again.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max = max_sources
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, source: str) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        now = self._clock()
        tokens, last = self._buckets.get(source, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= 1.0:
            self._store(source, tokens - 1.0, now)
            return 0.0
        self._store(source, tokens, now)
        return (1.0 - tokens) / self._rate

    def _store(self, source: str, tokens: float, now: float) -> None:
        self._buckets[source] = (tokens, now)
        self._buckets.move_to_end(source)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
