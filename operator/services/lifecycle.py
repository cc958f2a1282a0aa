"""The GameVM lifecycle: one table says what each transition does to the status.

Every change of phase, condition, stop reason and the Event that tells it goes through
`enter(status, reason, message)`, which looks the `Reason` up in `TRANSITIONS`. The
reconcile decides *which* transition applies; this module alone decides *what* it sets, so
a phase can no longer change without its conditions, or a stop without its Event.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Literal

from gamevm.models.conditions import ConditionStatus, ConditionType
from gamevm.models.enums import VMStatus
from gamevm.models.gamevm import GameVMStatus
from gamevm.models.reasons import Reason, StopReason
from gamevm.services.conditions import get_condition, set_condition

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the GameVM."""

    type: str
    reason: str
    message: str


class Post(Enum):
    """When a transition posts its Event."""

    NEVER = "never"
    ALWAYS = "always"
    ON_CHANGE = "on-change"
    """Only when the phase or the first condition (status, reason, message) changes: a
    state that persists across steps is told once, not on every retry."""


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""Leave this status field as it is."""


@dataclass(frozen=True)
class CondSpec:
    """One condition a transition sets; `reason` defaults to the transition's."""

    type: ConditionType
    status: ConditionStatus
    reason: str | None = None


@dataclass(frozen=True)
class Transition:
    """What entering one `Reason` does to the status."""

    phase: VMStatus | _Keep
    conditions: tuple[CondSpec, ...]
    event: EventType | None = None
    post: Post = Post.NEVER
    event_reason: str | None = None
    """The Event's reason when it differs from the transition's."""
    stop_reason: StopReason | _Keep | None = KEEP
    environment_ready: bool | _Keep = KEEP
    phase_only_unprovisioned: bool = False
    """Set the phase only while no instance exists (a block must not hide a live one)."""
    sets_message: bool = True


# Condition sets that several transitions share. The order matters: a transition's first
# condition is the one `Post.ON_CHANGE` compares.
_READY_FALSE = CondSpec(ConditionType.READY, "False")
_NOT_READY = (_READY_FALSE,)
_ENV_NOT_READY = (CondSpec(ConditionType.ENVIRONMENT_READY, "False"), _READY_FALSE)
_NOT_ADMITTED = (CondSpec(ConditionType.ADMITTED, "False"), _READY_FALSE)
_NOT_PROVISIONED = (_READY_FALSE, CondSpec(ConditionType.PROVISIONED, "False"))
_NOT_SYNCED = (CondSpec(ConditionType.SYNCED, "False"),)
_STOPPED = (
    CondSpec(ConditionType.READY, "False", "Stopped"),
    CondSpec(ConditionType.ENVIRONMENT_READY, "False", "Stopped"),
)
_AUTO_STOPPED = (*_STOPPED, CondSpec(ConditionType.AUTO_STOPPED, "True"))

TRANSITIONS: dict[Reason, Transition] = {
    # -- progress ---------------------------------------------------------------------
    Reason.CREATING: Transition(
        VMStatus.CREATING,
        (CondSpec(ConditionType.PROVISIONED, "False"), _READY_FALSE),
        "Normal",
        Post.ALWAYS,
        event_reason="ProviderSelected",
        stop_reason=None,
        environment_ready=False,
    ),
    Reason.INSTANCE_CREATED: Transition(
        KEEP,
        (CondSpec(ConditionType.PROVISIONED, "True"),),
        "Normal",
        Post.ALWAYS,
        sets_message=False,
    ),
    Reason.STARTING: Transition(
        VMStatus.CONFIGURING,
        (_READY_FALSE, CondSpec(ConditionType.AUTO_STOPPED, "False", "Started")),
        "Normal",
        Post.ALWAYS,
        stop_reason=None,
        environment_ready=False,
    ),
    Reason.CONFIGURING: Transition(
        VMStatus.CONFIGURING,
        (
            CondSpec(ConditionType.ENVIRONMENT_READY, "False", "WolfNotAnswering"),
            _READY_FALSE,
        ),
        environment_ready=False,
    ),
    # Cloud-init VMs: up, but not (yet) configured as their report says.
    Reason.AWAITING_CONFIGURATION: Transition(
        VMStatus.CONFIGURING,
        _ENV_NOT_READY,
        environment_ready=False,
    ),
    Reason.CONFIGURATION_FAILED: Transition(
        VMStatus.CONFIGURING,
        _ENV_NOT_READY,
        "Warning",
        Post.ON_CHANGE,
        environment_ready=False,
    ),
    Reason.OPERATOR_URL_MISSING: Transition(
        VMStatus.CONFIGURING,
        _ENV_NOT_READY,
        "Warning",
        Post.ON_CHANGE,
        environment_ready=False,
    ),
    Reason.RUNNING: Transition(
        VMStatus.RUNNING,
        (
            CondSpec(ConditionType.ENVIRONMENT_READY, "True", "WolfAnswering"),
            CondSpec(ConditionType.READY, "True"),
        ),
        "Normal",
        Post.ON_CHANGE,
        stop_reason=None,
        environment_ready=True,
    ),
    Reason.RECONCILED: Transition(
        KEEP, (CondSpec(ConditionType.SYNCED, "True"),), sets_message=False
    ),
    Reason.POLICY_ALLOWED: Transition(
        KEEP, (CondSpec(ConditionType.ADMITTED, "True"),), sets_message=False
    ),
    # -- stops --------------------------------------------------------------------------
    Reason.IDLE: Transition(
        VMStatus.STOPPED,
        _AUTO_STOPPED,
        "Normal",
        Post.ALWAYS,
        event_reason="AutoStopped",
        stop_reason=StopReason.IDLE,
        environment_ready=False,
    ),
    Reason.MAX_SESSION: Transition(
        VMStatus.STOPPED,
        _AUTO_STOPPED,
        "Normal",
        Post.ALWAYS,
        event_reason="AutoStopped",
        stop_reason=StopReason.MAX_SESSION,
        environment_ready=False,
    ),
    Reason.PROVISIONING_TIMEOUT: Transition(
        VMStatus.ERROR,
        (
            CondSpec(ConditionType.READY, "False"),
            CondSpec(ConditionType.ENVIRONMENT_READY, "False"),
            CondSpec(ConditionType.AUTO_STOPPED, "True"),
        ),
        "Warning",
        Post.ALWAYS,
        stop_reason=StopReason.PROVISIONING_TIMEOUT,
        environment_ready=False,
    ),
    Reason.STOP_REQUESTED: Transition(
        VMStatus.STOPPED,
        _STOPPED,
        "Normal",
        Post.ON_CHANGE,
        event_reason="Stopped",
        stop_reason=StopReason.REQUESTED,
        environment_ready=False,
    ),
    Reason.HALTED: Transition(
        VMStatus.STOPPED,
        _STOPPED,
        "Normal",
        Post.ON_CHANGE,
        event_reason="Stopped",
        stop_reason=StopReason.HALTED,
        environment_ready=False,
    ),
    # -- blocked before provisioning ----------------------------------------------------
    Reason.EMULATOR_CONFIG_MISSING: Transition(KEEP, _NOT_READY, "Warning", Post.ON_CHANGE),
    Reason.NO_ELIGIBLE_PROVIDER: Transition(
        VMStatus.ERROR,
        _NOT_PROVISIONED,
        "Warning",
        Post.ON_CHANGE,
    ),
    Reason.RUN_STRATEGY_NOT_ALLOWED: Transition(
        VMStatus.ERROR,
        _NOT_ADMITTED,
        "Warning",
        Post.ON_CHANGE,
        phase_only_unprovisioned=True,
    ),
    Reason.DELETION_POLICY_NOT_ALLOWED: Transition(
        VMStatus.ERROR,
        _NOT_ADMITTED,
        "Warning",
        Post.ON_CHANGE,
        phase_only_unprovisioned=True,
    ),
    Reason.INVALID_SPEC: Transition(
        VMStatus.ERROR,
        _NOT_READY,
        "Warning",
        Post.ON_CHANGE,
        phase_only_unprovisioned=True,
    ),
    Reason.GAME_LIBRARY_CREDENTIALS_UNAVAILABLE: Transition(
        KEEP, _NOT_READY, "Warning", Post.ON_CHANGE
    ),
    Reason.ACCESS_KEY_MISSING: Transition(
        VMStatus.ERROR,
        _NOT_READY,
        "Warning",
        Post.ON_CHANGE,
        phase_only_unprovisioned=True,
    ),
    Reason.ACCESS_SECRET_CONFLICT: Transition(
        VMStatus.ERROR,
        _NOT_PROVISIONED,
        "Warning",
        Post.ON_CHANGE,
        phase_only_unprovisioned=True,
    ),
    Reason.ACCESS_KEY_REMOVED: Transition(
        VMStatus.ERROR,
        _NOT_READY,
        "Warning",
        Post.ON_CHANGE,
        phase_only_unprovisioned=True,
    ),
    # -- problems with an instance ------------------------------------------------------
    Reason.INSTANCE_LOST: Transition(
        VMStatus.ERROR,
        _NOT_PROVISIONED,
        "Warning",
        Post.ON_CHANGE,
        environment_ready=False,
    ),
    Reason.PLACEMENT_LOST: Transition(
        VMStatus.CREATING,
        _NOT_PROVISIONED,
        "Warning",
        Post.ALWAYS,
        environment_ready=False,
    ),
    Reason.INSTANCE_ERROR: Transition(
        VMStatus.ERROR, _NOT_READY, "Warning", Post.ON_CHANGE, environment_ready=False
    ),
    Reason.UNSAFE_WOLF_ADDRESS: Transition(
        VMStatus.CONFIGURING,
        (
            CondSpec(ConditionType.ENVIRONMENT_READY, "False"),
            CondSpec(ConditionType.READY, "False", "Configuring"),
        ),
        "Warning",
        Post.ON_CHANGE,
        environment_ready=False,
    ),
    Reason.PROVIDER_RETRYING: Transition(
        KEEP,
        _NOT_SYNCED,
        "Warning",
        Post.ON_CHANGE,
    ),
    Reason.PROVIDER_FAILED: Transition(
        VMStatus.ERROR,
        (_READY_FALSE, CondSpec(ConditionType.SYNCED, "False")),
        "Warning",
        Post.ON_CHANGE,
    ),
    Reason.PAUSED: Transition(
        KEEP,
        _NOT_SYNCED,
        "Normal",
        Post.ON_CHANGE,
        sets_message=False,
    ),
}


def _fingerprint(st: GameVMStatus, first: ConditionType) -> tuple[object, ...]:
    condition = get_condition(st.conditions, first)
    if condition is None:
        return (st.phase,)
    return (st.phase, condition.status, condition.reason, condition.message)


def enter(
    st: GameVMStatus,
    reason: Reason,
    message: str,
    *,
    now: datetime,
    generation: int | None,
    event_message: str | None = None,
    detail: str | None = None,
) -> Event | None:
    """Apply the transition for `reason` to `st` (in place); the Event to post, if any.

    `detail` (an enum value from elsewhere, e.g. a provider's ErrorReason) replaces the
    transition's own reason in its conditions and Event, so `kubectl describe` says
    RateLimited rather than ProviderRetrying.
    """
    transition = TRANSITIONS[reason]
    before = _fingerprint(st, transition.conditions[0].type)
    if transition.phase is not KEEP and (
        not transition.phase_only_unprovisioned or st.provider_instance_id is None
    ):
        st.phase = transition.phase
    if transition.stop_reason is not KEEP:
        st.stop_reason = transition.stop_reason.value if transition.stop_reason else None
    if transition.environment_ready is not KEEP:
        st.gaming_environment_ready = transition.environment_ready
    if transition.sets_message:
        st.message = message
    for spec in transition.conditions:
        st.conditions = set_condition(
            st.conditions,
            spec.type,
            spec.status,
            spec.reason or detail or reason.value,
            message,
            now=now,
            generation=generation,
        )
    st.observed_generation = generation
    if transition.event is None or transition.post is Post.NEVER:
        return None
    if (
        transition.post is Post.ON_CHANGE
        and _fingerprint(st, transition.conditions[0].type) == before
    ):
        return None
    return Event(
        transition.event,
        detail or transition.event_reason or reason.value,
        event_message or message,
    )
