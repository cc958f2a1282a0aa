"""What the admin's EmulatorConfig allows a user's GameVM: pure checks, one verdict each.

The GameVM is the user's; the EmulatorConfig is the admin's. Where the two meet (run
strategy, deletion policy, session cap, provisioning deadline) the config wins, and a
GameVM asking for more is told so (condition Admitted=False and a Warning Event) and is
not provisioned.
"""

from dataclasses import dataclass

from gamevm.models.emulator_config import DEFAULT_MAX_PROVISIONING_MINUTES, EmulatorConfigSpec
from gamevm.models.enums import DeletionPolicy, RunStrategy
from gamevm.models.gamevm import GameVMSpec
from gamevm.models.reasons import Reason


@dataclass(frozen=True)
class Denial:
    """Why the GameVM asks for something its EmulatorConfig does not allow."""

    reason: Reason
    message: str


def admission(spec: GameVMSpec, config: EmulatorConfigSpec | None) -> Denial | None:
    """The first rule the GameVM breaks, or None (no config: nothing to judge yet)."""
    if config is None:
        return None
    console = config.console_type.value
    if spec.run_strategy is RunStrategy.ALWAYS and not config.allow_always_run_strategy:
        return Denial(
            Reason.RUN_STRATEGY_NOT_ALLOWED,
            f"runStrategy Always is not allowed by EmulatorConfig {console!r} "
            "(allowAlwaysRunStrategy: false); use Manual",
        )
    if spec.deletion_policy is DeletionPolicy.ORPHAN and not config.allow_orphan_deletion_policy:
        return Denial(
            Reason.DELETION_POLICY_NOT_ALLOWED,
            f"deletionPolicy Orphan is not allowed by EmulatorConfig {console!r} "
            "(allowOrphanDeletionPolicy: false); use Delete",
        )
    return None


def effective_run_strategy(spec: GameVMSpec, config: EmulatorConfigSpec | None) -> RunStrategy:
    """The strategy the operator honours: a forbidden Always counts as Manual (auto-stop)."""
    if (
        spec.run_strategy is RunStrategy.ALWAYS
        and config is not None
        and not config.allow_always_run_strategy
    ):
        return RunStrategy.MANUAL
    return spec.run_strategy


def session_cap_hours(spec: GameVMSpec, config: EmulatorConfigSpec | None) -> int | None:
    """maxSessionHours for this VM: every strategy, unless the admin exempts Always."""
    if config is None:
        return None
    strategy = effective_run_strategy(spec, config)
    if strategy is RunStrategy.ALWAYS and not config.max_session_applies_to_always:
        return None
    return config.max_session_hours


def provisioning_deadline_seconds(config: EmulatorConfigSpec | None) -> float:
    """How long a VM may stay creating or configuring (the config's, else the default)."""
    minutes = config.max_provisioning_minutes if config else DEFAULT_MAX_PROVISIONING_MINUTES
    return minutes * 60.0


def orphan_allowed(policy: DeletionPolicy, config: EmulatorConfigSpec | None) -> bool:
    """Whether a delete may leave the instance behind (asked for and allowed).

    No EmulatorConfig (deleted meanwhile): not allowed; the instance is deleted.
    """
    return (
        policy is DeletionPolicy.ORPHAN
        and config is not None
        and config.allow_orphan_deletion_policy
    )
