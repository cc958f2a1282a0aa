"""The seed's enums, value for value, plus the operator's own policy enums."""

from enum import StrEnum


class VMPreset(StrEnum):
    """Predefined VM configuration templates for different gaming requirements."""

    RETRO = "retro"
    ADVANCED = "advanced"
    PREMIUM = "premium"


class VMStatus(StrEnum):
    """VM lifecycle states; also the GameVM's `status.phase`."""

    CREATING = "creating"
    RUNNING = "running"
    STOPPED = "stopped"
    ERROR = "error"
    TERMINATED = "terminated"
    CONFIGURING = "configuring"


class CloudProvider(StrEnum):
    """Supported cloud infrastructure providers."""

    TENSORDOCK = "tensordock"
    CLOUDYPAD_GCP = "cloudypad_gcp"
    CLOUDYPAD_AWS = "cloudypad_aws"
    CLOUDYPAD_AZURE = "cloudypad_azure"
    CLOUDYPAD_PAPERSPACE = "cloudypad_paperspace"
    CLOUDYPAD_SCALEWAY = "cloudypad_scaleway"


class ConsoleType(StrEnum):
    """Nintendo console types supported by the gaming platform."""

    NES = "nes"
    SNES = "snes"
    GB = "gb"
    GBC = "gbc"
    GBA = "gba"
    NDS = "nds"
    N3DS = "3ds"
    GAMECUBE = "gamecube"
    WII = "wii"
    SWITCH = "switch"


class RunStrategy(StrEnum):
    """Power intent, after KubeVirt's runStrategy."""

    ALWAYS = "Always"
    MANUAL = "Manual"
    HALTED = "Halted"


class DeletionPolicy(StrEnum):
    """What deleting the GameVM does to the cloud instance, after Crossplane."""

    DELETE = "Delete"
    ORPHAN = "Orphan"


class GpuTier(StrEnum):
    """GPU class a preset needs; ordered none < basic < high-end."""

    NONE = "none"
    BASIC = "basic"
    HIGH_END = "high-end"


class PowerRequest(StrEnum):
    """Values of the `gamevm.dev/power-request` annotation."""

    START = "start"
    STOP = "stop"
