"""Leader election on a coordination.k8s.io Lease: one active operator among replicas.

The algorithm is client-go's leaderelection: a candidate takes the Lease when it is free,
or when its record (holder, renew time) has not changed for `lease_seconds` as observed
on the candidate's own clock (no clock comparison between machines). Every write carries
the resourceVersion it read, so two candidates can never both win. The leader renews
every `retry_seconds`; if it cannot renew for `renew_deadline_seconds` (shorter than the
lease), it stops acting before anyone else may take over.

kopf's own peering is not used: it pauses operators by priority but has no lease, so a
partitioned operator keeps acting.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
LEADER_LABEL = "gamevm.dev/leader"


@dataclass(frozen=True)
class LeaseConfig:
    """Where the Lease is, who we are, and the timing."""

    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0
    pod_name: str | None = None
    """Our pod, labelled gamevm.dev/leader=true while we lead (None outside a pod)."""


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Acquire, renew and release one Lease with the synchronous client (in threads)."""

    def __init__(
        self,
        api: client.ApiClient,
        config: LeaseConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leases = client.CoordinationV1Api(api)
        self._core = client.CoreV1Api(api)
        self._config = config
        self._clock = clock
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.leading = False

    # -- one attempt ---------------------------------------------------------------------

    def _try_acquire_or_renew(self) -> bool:
        """One get + create/replace; True when we hold the Lease afterwards."""
        cfg = self._config
        now = _now()
        try:
            lease = self._leases.read_namespaced_lease(cfg.name, cfg.namespace)
        except ApiException as exc:
            if exc.status != HTTP_NOT_FOUND:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=cfg.name, namespace=cfg.namespace),
                spec=self._spec(now, now, transitions=0),
            )
            try:
                self._leases.create_namespaced_lease(cfg.namespace, body)
            except ApiException as create_exc:
                if create_exc.status == HTTP_CONFLICT:
                    return False
                raise
            return True
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        record = (holder, spec.renew_time, spec.lease_duration_seconds)
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()
        duration = float(spec.lease_duration_seconds or cfg.lease_seconds)
        if holder and holder != cfg.identity and self._clock() < self._observed_at + duration:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if holder == cfg.identity else 1)
        acquired = spec.acquire_time if holder == cfg.identity and spec.acquire_time else now
        lease.spec = self._spec(acquired, now, transitions)
        try:
            # The read resourceVersion makes this a compare-and-swap.
            self._leases.replace_namespaced_lease(cfg.name, cfg.namespace, lease)
        except ApiException as exc:
            if exc.status == HTTP_CONFLICT:
                return False
            raise
        return True

    def _spec(self, acquired: datetime, renewed: datetime, transitions: int) -> client.V1LeaseSpec:
        return client.V1LeaseSpec(
            holder_identity=self._config.identity,
            lease_duration_seconds=max(1, round(self._config.lease_seconds)),
            acquire_time=acquired,
            renew_time=renewed,
            lease_transitions=transitions,
        )

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self._try_acquire_or_renew)
        except (ApiException, OSError, ValueError) as exc:
            status = getattr(exc, "status", None)
            log.warning("leader election: Lease call failed (%s %s)", type(exc).__name__, status)
            return False
        except Exception as exc:  # noqa: BLE001  # urllib3 errors: the API server is away
            log.warning("leader election: Lease call failed (%s)", type(exc).__name__)
            return False

    # -- the loops -------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait until we lead."""
        cfg = self._config
        log.info("leader election: %s waits for Lease %s/%s", cfg.identity, cfg.namespace, cfg.name)
        await self._label_pod(leader=False)  # a restarted container is no longer the leader
        while True:
            if await self._attempt():
                break
            await asyncio.sleep(cfg.retry_seconds)
        self.leading = True
        log.info("leader election: %s leads (Lease %s/%s)", cfg.identity, cfg.namespace, cfg.name)
        await self._label_pod(leader=True)

    async def hold(self, on_lost: Callable[[], None]) -> None:
        """Renew until cancelled; call `on_lost` when the renew deadline passes."""
        cfg = self._config
        last_renewed = self._clock()
        while True:
            await asyncio.sleep(cfg.retry_seconds)
            if await self._attempt():
                last_renewed = self._clock()
                continue
            if self._clock() - last_renewed >= cfg.renew_deadline_seconds:
                self.leading = False
                log.error(
                    "leader election: %s could not renew Lease %s/%s for %.0f s; stopping",
                    cfg.identity,
                    cfg.namespace,
                    cfg.name,
                    cfg.renew_deadline_seconds,
                )
                on_lost()
                return

    async def release(self) -> None:
        """Hand the Lease back at a clean shutdown, so a standby takes over at once."""
        if not self.leading:
            return
        self.leading = False
        await self._label_pod(leader=False)
        cfg = self._config

        def give_back() -> None:
            lease = self._leases.read_namespaced_lease(cfg.name, cfg.namespace)
            if lease.spec is None or lease.spec.holder_identity != cfg.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.lease_duration_seconds = 1
            self._leases.replace_namespaced_lease(cfg.name, cfg.namespace, lease)

        try:
            await asyncio.to_thread(give_back)
            log.info(
                "leader election: %s released Lease %s/%s", cfg.identity, cfg.namespace, cfg.name
            )
        except Exception as exc:  # noqa: BLE001  # best effort: the lease expires anyway
            log.warning("leader election: release failed (%s)", type(exc).__name__)

    async def _label_pod(self, *, leader: bool) -> None:
        """Best effort: the API Service routes to the pod labelled as leader."""
        pod = self._config.pod_name
        if not pod:
            return
        patch = {"metadata": {"labels": {LEADER_LABEL: "true" if leader else None}}}
        try:
            await asyncio.to_thread(
                self._core.patch_namespaced_pod, pod, self._config.namespace, patch
            )
        except Exception as exc:  # noqa: BLE001  # routing only; leadership is the Lease
            log.warning("leader election: cannot label pod %s (%s)", pod, type(exc).__name__)
