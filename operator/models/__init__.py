"""Pydantic models and enums: the one source of truth for CRDs and Mongo documents."""

from gamevm.models.conditions import Condition, ConditionType
from gamevm.models.documents import (
    EmulatorConfigDocument,
    VMDocument,
    VMResponse,
    VMStatusResponse,
)
from gamevm.models.emulator_config import EmulatorConfigSpec, GameOverride, ProviderPreference
from gamevm.models.enums import (
    CloudProvider,
    ConsoleType,
    DeletionPolicy,
    GpuTier,
    PowerRequest,
    RunStrategy,
    VMPreset,
    VMStatus,
)
from gamevm.models.game_library import GameLibrary, GameLibrarySource, SecretReference
from gamevm.models.gamevm import (
    CandidateDecision,
    GameVMSpec,
    GameVMStatus,
    ProviderDecision,
    VMCreateRequest,
)
from gamevm.models.location import GeoLocation
from gamevm.models.presets import CONSOLE_DEFAULT_PRESET, PRESET_RESOURCES, PresetResources

__all__ = [
    "CONSOLE_DEFAULT_PRESET",
    "PRESET_RESOURCES",
    "CandidateDecision",
    "CloudProvider",
    "Condition",
    "ConditionType",
    "ConsoleType",
    "DeletionPolicy",
    "EmulatorConfigDocument",
    "EmulatorConfigSpec",
    "GameLibrary",
    "GameLibrarySource",
    "GameOverride",
    "GameVMSpec",
    "GameVMStatus",
    "GeoLocation",
    "GpuTier",
    "PowerRequest",
    "PresetResources",
    "ProviderDecision",
    "ProviderPreference",
    "RunStrategy",
    "SecretReference",
    "VMCreateRequest",
    "VMDocument",
    "VMPreset",
    "VMResponse",
    "VMStatus",
    "VMStatusResponse",
]
