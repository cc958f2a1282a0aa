"""CamelCase reasons of phase transitions, conditions and Events, and why a VM stopped.

One enum per meaning, so a reason is never a free-form string in the lifecycle code:
`services/lifecycle.py` maps every `Reason` to the phase, conditions, stop reason and Event
it sets, in one table.
"""

from enum import StrEnum


class StopReason(StrEnum):
    """Why a VM is (to be) stopped; `status.stopReason`, Events, conditions and metrics."""

    IDLE = "Idle"
    MAX_SESSION = "MaxSessionExceeded"
    PROVISIONING_TIMEOUT = "ProvisioningTimeout"
    REQUESTED = "PowerRequestStop"
    HALTED = "RunStrategyHalted"


HOLDING_STOPS = frozenset(
    {StopReason.IDLE, StopReason.MAX_SESSION, StopReason.PROVISIONING_TIMEOUT}
)
"""Stops by an admin limit: the VM stays off, whatever its runStrategy, until a user asks
for it again (`gamevm.dev/power-request: start`)."""


class Reason(StrEnum):
    """Every lifecycle transition the reconcile can make."""

    # Progress.
    CREATING = "Creating"
    INSTANCE_CREATED = "InstanceCreated"
    STARTING = "Starting"
    CONFIGURING = "Configuring"
    AWAITING_CONFIGURATION = "AwaitingConfiguration"
    CONFIGURATION_FAILED = "ConfigurationFailed"
    OPERATOR_URL_MISSING = "OperatorUrlMissing"
    RUNNING = "Running"
    RECONCILED = "ReconcileSucceeded"
    # Stops (the values of StopReason).
    IDLE = StopReason.IDLE.value
    MAX_SESSION = StopReason.MAX_SESSION.value
    PROVISIONING_TIMEOUT = StopReason.PROVISIONING_TIMEOUT.value
    STOP_REQUESTED = StopReason.REQUESTED.value
    HALTED = StopReason.HALTED.value
    # Blocked before anything is provisioned.
    EMULATOR_CONFIG_MISSING = "EmulatorConfigMissing"
    NO_ELIGIBLE_PROVIDER = "NoEligibleProvider"
    RUN_STRATEGY_NOT_ALLOWED = "RunStrategyNotAllowed"
    DELETION_POLICY_NOT_ALLOWED = "DeletionPolicyNotAllowed"
    POLICY_ALLOWED = "PolicyAllowed"
    INVALID_SPEC = "InvalidSpec"
    ACCESS_KEY_MISSING = "AccessKeyMissing"
    GAME_LIBRARY_CREDENTIALS_UNAVAILABLE = "GameLibraryCredentialsUnavailable"
    ACCESS_SECRET_CONFLICT = "AccessSecretConflict"  # noqa: S105  # a reason, not a secret
    ACCESS_KEY_REMOVED = "AccessKeyRemoved"
    # Problems with an instance.
    INSTANCE_LOST = "InstanceLost"
    PLACEMENT_LOST = "PlacementLost"
    INSTANCE_ERROR = "InstanceError"
    UNSAFE_WOLF_ADDRESS = "UnsafeWolfAddress"
    PROVIDER_RETRYING = "ProviderRetrying"
    PROVIDER_FAILED = "ProviderFailed"
    # Reconciliation itself.
    PAUSED = "ReconcilePaused"
