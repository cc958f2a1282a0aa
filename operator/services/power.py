"""Power intent and the auto-stop policy: pure functions, each returning a verdict and why."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gamevm.models.enums import PowerRequest, RunStrategy, VMStatus


class StopReason(StrEnum):
    """Why a VM is (to be) stopped; used in Events, conditions and metrics."""

    IDLE = "Idle"
    MAX_SESSION = "MaxSessionExceeded"
    REQUESTED = "PowerRequestStop"
    HALTED = "RunStrategyHalted"


def wants_running(
    strategy: RunStrategy,
    phase: VMStatus | None,
    request: PowerRequest | None,
) -> bool:
    """Whether the instance should be powered on now.

    Always keeps it on; Halted keeps it off. Manual starts on create, honours one-shot
    power requests, and otherwise keeps the current power state (so an auto-stopped VM stays
    stopped until someone asks for it).
    """
    if strategy is RunStrategy.ALWAYS:
        return True
    if strategy is RunStrategy.HALTED:
        return False
    if request is PowerRequest.START:
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
    """Whether a running VM should be auto-stopped, and the figures behind it."""

    stop: StopReason | None
    last_activity: datetime
    idle_seconds: float
    session_seconds: float
    message: str


def latest(*moments: datetime | None) -> datetime | None:
    """The latest of the given moments, ignoring None."""
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def auto_stop_verdict(
    *,
    now: datetime,
    started_at: datetime,
    last_activity: datetime | None,
    auto_stop_timeout: int,
    max_session_hours: int | None,
) -> ActivityVerdict:
    """Idle longer than the timeout, or a session longer than the console's maximum: stop."""
    activity = latest(last_activity, started_at) or started_at
    idle = (now - activity).total_seconds()
    session = (now - started_at).total_seconds()
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
        )
    if idle >= auto_stop_timeout:
        return ActivityVerdict(
            StopReason.IDLE,
            activity,
            idle,
            session,
            f"no player activity for {int(idle)} s (autoStopTimeout {auto_stop_timeout} s)",
        )
    return ActivityVerdict(None, activity, idle, session, "active")
