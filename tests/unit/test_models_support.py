"""Helpers for the model tests: build valid inputs, assert field-specific validation errors.

Named `test_models_*` so it sits with the tests it serves; it defines no tests itself.
"""

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_snake

Loc = tuple[str | int, ...]


def snake_loc(loc: tuple[str | int, ...]) -> Loc:
    """An error location with camelCase aliases turned back into field names."""
    return tuple(to_snake(part) if isinstance(part, str) else part for part in loc)


def reject(model: type[BaseModel], data: dict[str, Any], *loc: str | int) -> ValidationError:
    """Assert `data` fails with exactly one error, located at the field path `loc`."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    errors = info.value.errors()
    locations = [snake_loc(error["loc"]) for error in errors]
    assert locations == [loc], f"expected one error at {loc}, got {errors}"
    return info.value


def error_message(error: ValidationError) -> str:
    """The message of a single-error ValidationError."""
    return str(error.errors()[0]["msg"])


def gamevm_spec(**overrides: Any) -> dict[str, Any]:
    """A valid GameVM spec in camelCase (the seed's Switch example), with overrides."""
    spec: dict[str, Any] = {
        "consoleType": "switch",
        "gameId": "mario-odyssey",
        "userId": "user123",
        "userLocation": {"latitude": 32.7767, "longitude": -96.7970},
        "autoStopTimeout": 1800,
    }
    spec.update(overrides)
    return spec


def provider_entry(provider: str = "tensordock", priority: int = 1, **extra: Any) -> dict[str, Any]:
    """One valid preferredProviders entry."""
    return {"provider": provider, "priority": priority, **extra}


def emulator_config_spec(**overrides: Any) -> dict[str, Any]:
    """A valid EmulatorConfig spec in camelCase (a premium Switch config), with overrides."""
    spec: dict[str, Any] = {
        "consoleType": "switch",
        "preferredProviders": [
            provider_entry("tensordock", 1, costPerHourLimit=0.8),
            provider_entry("cloudypad_gcp", 2, costPerHourLimit=1.3, regions=["us-central1"]),
        ],
        "defaultPreset": "premium",
        "costPerHourLimit": 1.3,
        "minCpu": 8,
        "minRamGb": 16,
        "requiresGpu": True,
        "maxSessionHours": 4,
        "gameOverrides": [{"gameId": "zelda-totk", "preset": "premium"}],
    }
    spec.update(overrides)
    return spec


def vm_document(**overrides: Any) -> dict[str, Any]:
    """A valid VMDocument in the seed's snake_case (the seed's VMDocument example)."""
    doc: dict[str, Any] = {
        "vm_id": "vm-123",
        "status": "creating",
        "preset": "premium",
        "console_type": "switch",
        "provider": "tensordock",
        "user_id": "user123",
    }
    doc.update(overrides)
    return doc


def emulator_config_document(**overrides: Any) -> dict[str, Any]:
    """A valid EmulatorConfigDocument in the seed's snake_case."""
    doc: dict[str, Any] = {
        "console_type": "switch",
        "preferred_providers": [
            {
                "provider": "tensordock",
                "priority": 1,
                "enabled": True,
                "preset_override": "premium",
                "cost_per_hour_limit": 2.50,
                "regions": ["us-central", "us-east"],
            },
            {
                "provider": "cloudypad_gcp",
                "priority": 2,
                "enabled": True,
                "preset_override": None,
                "cost_per_hour_limit": 3.00,
            },
        ],
        "default_preset": "premium",
        "cost_per_hour_limit": 3.0,
        "min_cpu": 8,
        "min_ram_gb": 16,
        "requires_gpu": True,
        "max_session_hours": 4,
    }
    doc.update(overrides)
    return doc


# The seed's document field lists (data-models.md), shared by the model and mirror tests.
SEED_VM_DOCUMENT_FIELDS = {
    "vm_id",
    "status",
    "preset",
    "console_type",
    "provider",
    "created_at",
    "updated_at",
    "ip_address",
    "wolf_port",
    "ssh_port",
    "ssh_private_key",
    "auto_stop_timeout",
    "user_id",
    "provider_instance_id",
    "provider_metadata",
    "gaming_environment_ready",
    "cloudypad_configured",
    "games_mounted",
    "last_activity",
    "last_moonlight_connection",
    "user_location",
}

SEED_EMULATOR_CONFIG_DOCUMENT_FIELDS = {
    "console_type",
    "preferred_providers",
    "default_preset",
    "cost_per_hour_limit",
    "min_cpu",
    "min_ram_gb",
    "requires_gpu",
    "max_session_hours",
}
