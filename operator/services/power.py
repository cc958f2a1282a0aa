"""Power intent and the auto-stop policy: pure functions, each returning a verdict and why."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from gamevm.models.enums import PowerRequest, RunStrategy, VMStatus
from gamevm.models.reasons import HOLDING_STOPS, StopReason

__all__ = [
    "ActivityVerdict",
    "StopReason",
    "activity_check_delay",
    "auto_stop_verdict",
    "held",
    "latest",
    "not_in_future",
    "parse_power_request",
    "wants_running",
]


def held(stop_reason: str | None) -> bool:
    """Whether the last stop was an admin limit that keeps the VM off until asked."""
    return stop_reason in {s.value for s in HOLDING_STOPS}


def wants_running(
    strategy: RunStrategy,
    phase: VMStatus | None,
    request: PowerRequest | None,
    stop_reason: str | None = None,
) -> bool:
    """Whether the instance should be powered on now.

    Halted keeps it off. A VM stopped by an admin limit (idle, session cap, provisioning
    deadline) stays off until a start request, whatever its strategy: otherwise Always
    would power it straight back on and the limit would bound nothing. Always keeps it on.
    Manual starts on create, honours one-shot power requests, and otherwise keeps the
    current power state.
    """
    if strategy is RunStrategy.HALTED:
        return False
    if request is PowerRequest.START:
        return True
    if held(stop_reason):
        return False
    if strategy is RunStrategy.ALWAYS:
        return True
    if request is PowerRequest.STOP:
        return False
    return phase is not VMStatus.STOPPED


def parse_power_request(value: str | None) -> PowerRequest | None:
    """The annotation's value as a request; anything else is ignored (and reported)."""
    if value is None:
        return None
    try:
        return PowerRequest(value.strip().lower())
    except ValueError:
        return None


@dataclass(frozen=True)
class ActivityVerdict:
    """Whether a billing VM should be auto-stopped, and the figures behind it."""

    stop: StopReason | None
    last_activity: datetime
    idle_seconds: float
    session_seconds: float
    message: str
    idle_limit: float
    """Seconds of idleness that stop this VM (inf when idle never does)."""


def latest(*moments: datetime | None) -> datetime | None:
    """The latest of the given moments, ignoring None."""
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def not_in_future(moment: datetime | None, now: datetime) -> datetime | None:
    """Activity evidence claimed in the future is no evidence (it would defeat the idle stop)."""
    if moment is None or moment > now:
        return None
    return moment


def auto_stop_verdict(
    *,
    now: datetime,
    started_at: datetime,
    last_activity: datetime | None,
    auto_stop_timeout: float | None,
    max_session_hours: int | None,
) -> ActivityVerdict:
    """A session longer than the console's maximum, or idle longer than the timeout: stop.

    `auto_stop_timeout` None: idleness never stops the VM (runStrategy Always). Idle and
    session seconds are never negative, whatever the clocks said.
    """
    activity = latest(not_in_future(last_activity, now), started_at) or started_at
    idle = max(0.0, (now - activity).total_seconds())
    session = max(0.0, (now - started_at).total_seconds())
    idle_limit = float("inf") if auto_stop_timeout is None else float(auto_stop_timeout)
    if (
        max_session_hours is not None
        and session >= timedelta(hours=max_session_hours).total_seconds()
    ):
        return ActivityVerdict(
            StopReason.MAX_SESSION,
            activity,
            idle,
            session,
            f"session ran {session / 3600:.2f} h, the console's maximum is {max_session_hours} h",
            idle_limit,
        )
    if idle >= idle_limit:
        return ActivityVerdict(
            StopReason.IDLE,
            activity,
            idle,
            session,
            f"no player activity for {int(idle)} s (limit {int(idle_limit)} s)",
            idle_limit,
        )
    return ActivityVerdict(None, activity, idle, session, "active", idle_limit)


CHECK_SPREAD = 0.2
"""How much shorter than `max_interval` a VM's longest check gap may be (its `spread`)."""


def activity_check_delay(
    idle_left: float, interval: float, max_interval: float, spread: float = 0.0
) -> float:
    """Seconds until a running VM's next activity check (a Wolf probe), from the seconds
    left before its idle deadline (inf when idleness never stops it).

    Half the time left, between `interval` and `max_interval`: far from the deadline a
    check can only move it, so checks are sparse; they come closer together as it nears
    (the last ones `interval` apart), and the caller also looks at the deadline itself.
    Activity shorter than the gap between two checks and over before the deadline is
    what sparse checks can miss; a heartbeat reports it regardless.

    `spread` (0 to 1, fixed per VM) shortens the longest gap by up to CHECK_SPREAD: VMs
    whose checks began together (every VM after an operator restart) drift apart instead
    of all being probed in one burst every `max_interval`.
    """
    longest = max(interval, max_interval * (1.0 - CHECK_SPREAD * spread))
    return max(interval, min(longest, idle_left / 2))
