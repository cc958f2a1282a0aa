"""Kubernetes-style conditions (metav1.Condition shape)."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from gamevm.models.base import StatusModel

ConditionStatus = Literal["True", "False", "Unknown"]


class ConditionType(StrEnum):
    """Condition types a GameVM reports."""

    READY = "Ready"
    PROVISIONED = "Provisioned"
    ENVIRONMENT_READY = "EnvironmentReady"
    AUTO_STOPPED = "AutoStopped"
    PAUSED = "Paused"
    SYNCED = "Synced"
    ADMITTED = "Admitted"
    """The GameVM asks only for what its console's EmulatorConfig allows."""


class Condition(StatusModel):
    """One observation of one aspect of the object."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the last transition.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: datetime = Field(
        description="When the status last changed (not the last update)."
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation this condition was computed from."
    )
