"""A small JSON-over-HTTP client for provider APIs.

One `aiohttp.ClientSession` per adapter, an explicit `ClientTimeout`, a client-side token
bucket, and bounded retries with full-jitter exponential backoff on 429, 5xx, connection
errors and timeouts only. `Retry-After` (seconds or HTTP date) is honoured; a wait longer
than `backoff_max` is not slept through but returned as a retryable error carrying
`retry_after`, so the reconcile loop backs off instead of holding a worker.

Requests that are not idempotent (`idempotent=False`) are retried only on 429 (the server
did not act on them); after a 5xx, timeout or dropped connection the caller must look
before it retries, because the server may have acted.
"""

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from gamevm.providers.base import ErrorReason, ProviderError
from gamevm.providers.priority import current_priority

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ERROR_TEXT = 300


class TokenBucket:
    """The provider's shared request budget: at most `per_minute` requests in any 60 s.

    One bucket per provider account, shared by every call of every VM. It holds `burst`
    tokens and refills at (per_minute - burst) / 60 per second, so a full burst plus a
    minute of refill never exceeds `per_minute`. Waiters are served by priority (see
    `gamevm.providers.priority`: observation before placement before creates), first come
    first served within a priority, so a thousand queued creates never hold up the one list
    call that observes every VM. A 429 from the server (`slow_down`) pauses the whole
    bucket for the Retry-After and halves its rate, which then recovers step by step: the
    account is over its limit, not one VM.
    """

    RECOVERY_STEP = 0.05
    """Share of the nominal rate regained per granted token after a slow-down."""
    MIN_RATE_SHARE = 0.1

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.burst = max(1, per_minute // 50)
        self.nominal_rate = max(per_minute - self.burst, 1) / 60.0
        self.rate = self.nominal_rate
        self._tokens = float(self.burst)
        self._clock = clock
        self._updated = clock()
        self._paused_until = 0.0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None
        self.slowdowns = 0
        """How often a 429 slowed the bucket (for tests and metrics)."""

    def _refill(self) -> None:
        now = self._clock()
        if now < self._paused_until:
            self._updated = now
            return
        start = max(self._updated, self._paused_until)
        self._tokens = min(self.burst, self._tokens + max(0.0, now - start) * self.rate)
        self._updated = now

    def delay_for_next(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        self._refill()
        pause = max(0.0, self._paused_until - self._clock())
        if pause > 0:
            return pause + (0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    def _take(self) -> None:
        # May dip a hair below zero from float rounding; the next wait accounts for it.
        self._tokens -= 1
        if self.rate < self.nominal_rate:
            self.rate = min(self.nominal_rate, self.rate + self.nominal_rate * self.RECOVERY_STEP)

    async def acquire(self, priority: int | None = None) -> None:
        """Take one token, waiting (by priority, then arrival) until one is available."""
        prio = current_priority() if priority is None else priority
        if not self._waiters and self.delay_for_next() == 0:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (prio, next(self._seq), future))
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._tokens += 1  # granted just as the caller gave up: give it back
            raise

    async def _dispatch(self) -> None:
        while self._waiters:
            wait = self.delay_for_next()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            while self._waiters and self._waiters[0][2].done():
                heapq.heappop(self._waiters)  # cancelled while waiting
            if not self._waiters:
                return
            _, _, future = heapq.heappop(self._waiters)
            self._take()
            future.set_result(None)

    def slow_down(self, retry_after: float | None) -> None:
        """The server said 429: pause every caller and halve the rate."""
        self.slowdowns += 1
        pause = retry_after if retry_after is not None else 60.0 / self.per_minute
        self._refill()
        self._paused_until = max(self._paused_until, self._clock() + pause)
        self._tokens = min(self._tokens, 0.0)
        self.rate = max(self.nominal_rate * self.MIN_RATE_SHARE, self.rate / 2)
        log.info(
            "%d requests/min budget: 429, paused %.1fs, now %.0f/min",
            self.per_minute,
            pause,
            self.rate * 60,
        )


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """AWS 'full jitter': uniform in [0, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2**attempt))
    return (rng or random).uniform(0, ceiling)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def trim(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """One line, at most `limit` characters: error texts go into status and Events."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class HttpResponse:
    """Status and body of one response (body parsed as JSON when it is JSON)."""

    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry."""

    retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0


class JsonHttpClient:
    """Sends requests to one API with auth headers, rate limit and retries."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        policy: RetryPolicy,
        bucket: TokenBucket,
        provider_label: str,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = dict(headers)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._policy = policy
        self._bucket = bucket
        self._label = provider_label
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily so the session binds to the running loop, not the import-time one.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> HttpResponse:
        """The final response (any status); raises only when no response ever came back.

        A retryable status that survives every retry is returned, not raised: the caller
        maps it (it knows the API's error shapes).
        """
        url = f"{self._base_url}/{path.lstrip('/')}"
        attempt = 0
        while True:
            await self._bucket.acquire()
            try:
                response = await self._send(method, url, json_body, params)
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = (
                    ErrorReason.TIMEOUT
                    if isinstance(exc, TimeoutError)
                    else (ErrorReason.CONNECTION_ERROR)
                )
                if not idempotent or attempt >= self._policy.retries:
                    raise ProviderError(
                        reason,
                        f"{self._label} {method} {path}: {type(exc).__name__}: {trim(str(exc))}",
                        retryable=True,
                    ) from exc
                await self._backoff(attempt, None, type(exc).__name__)
                attempt += 1
                continue
            if response.status == 429:
                # The account is over its limit: every caller slows down, not just this one.
                self._bucket.slow_down(parse_retry_after(response.headers.get("Retry-After")))
            if response.status not in RETRYABLE_STATUSES or attempt >= self._policy.retries:
                return response
            if response.status != 429 and not idempotent:
                return response
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > self._policy.backoff_max:
                return response
            await self._backoff(attempt, retry_after, f"HTTP {response.status}")
            attempt += 1

    async def _send(
        self, method: str, url: str, json_body: Any, params: Mapping[str, str] | None
    ) -> HttpResponse:
        session = self._get_session()
        async with session.request(method, url, json=json_body, params=params) as resp:
            text = await resp.text()
            return HttpResponse(status=resp.status, text=text, headers=dict(resp.headers))

    async def _backoff(self, attempt: int, retry_after: float | None, what: str) -> None:
        delay = full_jitter(attempt, self._policy.backoff_base, self._policy.backoff_max)
        if retry_after is not None:
            delay = max(delay, retry_after)
        log.info("%s: %s, retry %d in %.2fs", self._label, what, attempt + 1, delay)
        await self._sleep(delay)
