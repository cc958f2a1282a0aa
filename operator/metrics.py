"""Prometheus metrics of the operator, served on `/metrics` by the HTTP server.

Imports only prometheus_client and the standard library, so every layer may
use it. Call sites stay one line: `metrics.count_autostop("idle")`,
`with metrics.provider_call("tensordock", "create"): ...`.

Everything is registered in one module-level `REGISTRY` (not the global
default one), so `render()` serves exactly these series and tests can scrape
them without the process collectors of the default registry.
"""

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# `*_created` timestamps per counter series double the series count and no
# dashboard here uses them (process-wide switch of prometheus_client).
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)

UNASSIGNED = "none"
"""Label value for a VM whose provider is not chosen yet."""

BILLED_PHASES = frozenset({"creating", "configuring", "running"})
"""Phases in which a provider bills the instance's hourly price (stopped VMs
only pay for storage, which the offers do not price)."""

# Provisioning takes seconds on the simulators and up to tens of minutes on a
# cloud (CloudyPad installs drivers and Wolf), so the buckets span both.
PROVISIONING_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400)

PROVISIONING_DURATION = Histogram(
    "gamevm_provisioning_duration_seconds",
    "Seconds from GameVM creation to phase running, by provider.",
    ["provider"],
    buckets=PROVISIONING_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_REQUESTS = Counter(
    "gamevm_provider_requests_total",
    "Provider API calls (HTTP requests or CLI runs) by provider and operation.",
    ["provider", "operation"],
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "gamevm_provider_errors_total",
    "Failed provider API calls by provider, operation and error reason.",
    ["provider", "operation", "reason"],
    registry=REGISTRY,
)
AUTOSTOPS = Counter(
    "gamevm_autostops_total",
    "VMs stopped by the operator's auto-stop policy, by reason.",
    ["reason"],
    registry=REGISTRY,
)
PROVISIONING_TIMEOUTS = Counter(
    "gamevm_provisioning_timeouts_total",
    "VMs stopped because they were still creating or configuring at the EmulatorConfig's "
    "maxProvisioningMinutes, by provider.",
    ["provider"],
    registry=REGISTRY,
)
POLICY_DENIALS = Counter(
    "gamevm_policy_denials_total",
    "Reconcile steps that refused a GameVM what its EmulatorConfig does not allow, by reason.",
    ["reason"],
    registry=REGISTRY,
)
COST_GUARD_REFUSALS = Counter(
    "gamevm_cost_guard_refusals_total",
    "Creates refused just before the call because the exact offer broke the VM's preset or "
    "cost cap, by provider.",
    ["provider"],
    registry=REGISTRY,
)
MIRROR_PENDING_WRITES = Gauge(
    "gamevm_mirror_pending_writes",
    "Mongo mirror writes waiting to be applied.",
    registry=REGISTRY,
)
MIRROR_FAILURES = Counter(
    "gamevm_mirror_failures_total",
    "Mongo mirror operations that failed (they are retried), by operation.",
    ["operation"],
    registry=REGISTRY,
)
MIRROR_LAG = Gauge(
    "gamevm_mirror_lag_seconds",
    "Age of the oldest mirror write not yet applied; 0 when the mirror is caught up.",
    registry=REGISTRY,
)
MIRROR_WRITES = Counter(
    "gamevm_mirror_writes_total",
    "Mongo mirror writes applied, by collection (vm, config) and outcome (written, or stale:"
    " a later or identical document was already stored, nothing changed).",
    ["collection", "outcome"],
    registry=REGISTRY,
)
MIRROR_DEGRADED = Gauge(
    "gamevm_mirror_degraded",
    "1 when the MongoDB server lacks this capability (ttl, partial_filter, unique) and the"
    " mirror works around it (see docs/mongodb-compat.md).",
    ["capability"],
    registry=REGISTRY,
)
MIRROR_PURGED = Counter(
    "gamevm_mirror_purged_total",
    "Terminated VM documents deleted by the operator's purge (servers without TTL indexes).",
    registry=REGISTRY,
)


@dataclass(frozen=True)
class _VMSample:
    phase: str
    provider: str
    console: str
    cost_per_hour: float


class _FleetCollector(Collector):
    """Computes the per-VM gauges at scrape time from the last known state of
    each VM, so a deleted VM or a phase change never leaves a stale series."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vms: dict[str, _VMSample] = {}

    def track(self, uid: str, sample: _VMSample) -> None:
        with self._lock:
            self._vms[uid] = sample

    def forget(self, uid: str) -> None:
        with self._lock:
            self._vms.pop(uid, None)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            samples = list(self._vms.values())
        vms = GaugeMetricFamily(
            "gamevm_vms",
            "GameVMs known to the operator, by phase, provider and console.",
            labels=["phase", "provider", "console"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        spend: dict[str, float] = {}
        for vm in samples:
            key = (vm.phase, vm.provider, vm.console)
            counts[key] = counts.get(key, 0) + 1
            if vm.phase in BILLED_PHASES:
                spend[vm.provider] = spend.get(vm.provider, 0.0) + vm.cost_per_hour
        for labels, count in sorted(counts.items()):
            vms.add_metric(list(labels), count)
        yield vms
        usd = GaugeMetricFamily(
            "gamevm_estimated_spend_usd_per_hour",
            "Sum of the hourly price of billed GameVMs (creating, configuring, running).",
            labels=["provider"],
        )
        for provider, total in sorted(spend.items()):
            usd.add_metric([provider], total)
        yield usd


_FLEET = _FleetCollector()
REGISTRY.register(_FLEET)


def _label(value: object) -> str:
    """Enum members by value, None as UNASSIGNED, anything else as str."""
    if value is None or value == "":
        return UNASSIGNED
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def track_vm(
    uid: str,
    *,
    phase: object,
    provider: object,
    console: object,
    cost_per_hour: float | None = None,
) -> None:
    """Record the current phase (and price) of one GameVM; call on every status write."""
    sample = _VMSample(_label(phase), _label(provider), _label(console), cost_per_hour or 0.0)
    _FLEET.track(uid, sample)


def forget_vm(uid: str) -> None:
    """Drop a GameVM from the gauges (after its finalizer is released)."""
    _FLEET.forget(uid)


def observe_provisioning(provider: object, seconds: float) -> None:
    """Record one create -> running duration; call once, on the transition to running."""
    PROVISIONING_DURATION.labels(provider=_label(provider)).observe(max(seconds, 0.0))


def count_provider_request(provider: object, operation: str) -> None:
    """Count one provider API call."""
    PROVIDER_REQUESTS.labels(provider=_label(provider), operation=operation).inc()


def count_provider_error(provider: object, operation: str, reason: object) -> None:
    """Count one failed provider API call; `reason` is a ProviderError reason."""
    PROVIDER_ERRORS.labels(
        provider=_label(provider), operation=operation, reason=_label(reason)
    ).inc()


def error_reason(exc: BaseException) -> str:
    """A bounded label for an exception: its `reason` attribute (ProviderError)
    or else its class name, never its message (messages are unbounded and may
    carry secrets)."""
    reason = getattr(exc, "reason", None)
    return _label(reason) if reason is not None else type(exc).__name__


@contextmanager
def provider_call(provider: object, operation: str) -> Iterator[None]:
    """Count a provider call and, if it raises, its error; works in async code too."""
    count_provider_request(provider, operation)
    try:
        yield
    except Exception as exc:
        count_provider_error(provider, operation, error_reason(exc))
        raise


def count_autostop(reason: object) -> None:
    """Count one auto-stop (e.g. `idle`, `max-session`)."""
    AUTOSTOPS.labels(reason=_label(reason)).inc()


def count_provisioning_timeout(provider: object) -> None:
    """Count one VM stopped at its provisioning deadline."""
    PROVISIONING_TIMEOUTS.labels(provider=_label(provider)).inc()


def count_policy_denial(reason: object) -> None:
    """Count one step that refused what the EmulatorConfig does not allow."""
    POLICY_DENIALS.labels(reason=_label(reason)).inc()


def count_cost_guard_refusal(provider: object) -> None:
    """Count one create refused by the guard just before the provider call."""
    COST_GUARD_REFUSALS.labels(provider=_label(provider)).inc()


def set_mirror_backlog(pending: int, oldest_pending_since: float | None = None) -> None:
    """Publish the mirror queue: its length and when (time.monotonic()) the oldest
    pending write was queued; lag is then computed at scrape time."""
    MIRROR_PENDING_WRITES.set(pending)
    if oldest_pending_since is None or pending == 0:
        MIRROR_LAG.set_function(lambda: 0.0)
    else:
        since = oldest_pending_since
        MIRROR_LAG.set_function(lambda: max(time.monotonic() - since, 0.0))


def count_mirror_failure(operation: str) -> None:
    """Count one failed mirror operation (`upsert`, `delete`, `resync`, `connect`)."""
    MIRROR_FAILURES.labels(operation=operation).inc()


def count_mirror_write(collection: str, outcome: str) -> None:
    """Count one mirror write (`vm` or `config`; `written` or `stale`)."""
    MIRROR_WRITES.labels(collection=collection, outcome=outcome).inc()


def set_mirror_degraded(capability: str, degraded: bool) -> None:
    """Publish whether the mirror works around a missing server capability."""
    MIRROR_DEGRADED.labels(capability=capability).set(1 if degraded else 0)


def count_mirror_purged(deleted: int) -> None:
    """Count documents deleted by the operator's purge."""
    MIRROR_PURGED.inc(deleted)


def render() -> tuple[bytes, str]:
    """The exposition body and its Content-Type, for the `/metrics` handler."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
