"""The operator's run-time context, kept in kopf's memo and built at start-up."""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gamevm.handlers.kube import Kube
from gamevm.models.enums import CloudProvider
from gamevm.providers.base import Provider
from gamevm.providers.budget import BudgetedProvider
from gamevm.providers.wolf import HttpWolfProbe
from gamevm.services.access import KeyRing
from gamevm.services.configuration import ConfigurationReport
from gamevm.services.reconcile import Event, Reconciler
from gamevm.services.sharding import Shard
from gamevm.settings import Settings

if TYPE_CHECKING:
    from gamevm.mirror.repository import Mirror


@dataclass
class VMRuntime:
    """In-memory state of one GameVM's daemon (rebuilt from status after a restart)."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    heartbeat: datetime | None = None
    configuration: ConfigurationReport | None = None
    """The VM's latest configuration report; the reconcile copies it into status."""
    retries: int = 0
    wolf_misses: int = 0
    """Consecutive unanswered Wolf probes of the running VM (see reconcile)."""
    written_status: dict[str, Any] | None = None
    """The status as the API server has it from this operator (what a patch diffs against)."""
    status: dict[str, Any] | None = None
    """The status the last step decided; ahead of `written_status` while a write is held."""
    hold_until: float | None = None
    """Event-loop time by which a held status write is sent (None: nothing held)."""
    daemon_alive: bool = False
    """The VM's daemon runs (not paused, not another shard's): it will take a report."""
    report_waiters: list[tuple[datetime, "asyncio.Future[None]"]] = field(default_factory=list)
    """Configuration reports (by time received) whose VM waits for them to be in status."""
    console: str | None = None
    held_events: list["Event"] = field(default_factory=list)
    """Normal Events of a provisioning VM: posted as one, with the next Warning or once the
    VM settles (running, stopped, error)."""
    seen: tuple[Any, ...] = ()
    """(generation, annotations) last acted on: changes to these wake the daemon."""
    access_key_id: str | None = None
    """Master key id of the VM's access material (status.accessKeyId), for heartbeats."""


@dataclass
class AppContext:
    """Everything the handlers share."""

    settings: Settings
    kube: Kube
    providers: dict[CloudProvider, Provider]
    budgets: dict[CloudProvider, BudgetedProvider]
    """The same providers, as the shared budget (seeded with what status already knows)."""
    reconciler: Reconciler
    wolf: HttpWolfProbe
    mirror: "Mirror | None"
    keys: KeyRing | None
    """The access master keys; None when the credentials Secret has no usable one."""
    runtimes: dict[str, VMRuntime] = field(default_factory=dict)
    """By GameVM uid."""
    uids: dict[str, str] = field(default_factory=dict)
    """namespace/name -> uid, for the heartbeat endpoint."""
    mirror_degraded_told: set[str] = field(default_factory=set)
    """EmulatorConfig uids that got this process's MirrorDegraded Event."""
    ready: bool = False
    shard: Shard | None = None
    """The uid-hash shard this replica handles (GAMEVM_SHARD); None: every GameVM."""

    def runtime(self, uid: str) -> VMRuntime:
        """The runtime of a VM, created on first use."""
        runtime = self.runtimes.get(uid)
        if runtime is None:
            runtime = self.runtimes[uid] = VMRuntime()
        return runtime

    def wake_console(self, console: str) -> None:
        """Wake the daemons of one console's VMs (after its EmulatorConfig changed)."""
        for runtime in self.runtimes.values():
            if runtime.console == console:
                runtime.wake.set()
