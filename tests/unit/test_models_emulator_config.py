"""EmulatorConfig spec: the seed's EmulatorConfigDocument and its provider preference format."""

from typing import Any

import pytest
from pydantic import ValidationError

from gamevm.models import (
    CloudProvider,
    ConsoleType,
    EmulatorConfigSpec,
    GameOverride,
    ProviderPreference,
    VMPreset,
)
from tests.unit.test_models_support import (
    emulator_config_spec,
    error_message,
    provider_entry,
    reject,
)

SEED_PREFERENCE_FIELDS = {
    "provider",
    "priority",
    "enabled",
    "preset_override",
    "cost_per_hour_limit",
    "regions",
}
SEED_CONFIG_FIELDS = {
    "console_type",
    "preferred_providers",
    "default_preset",
    "cost_per_hour_limit",
    "min_cpu",
    "min_ram_gb",
    "requires_gpu",
    "max_session_hours",
}


def test_provider_preference_has_exactly_the_seed_keys() -> None:
    assert set(ProviderPreference.model_fields) == SEED_PREFERENCE_FIELDS


ADMIN_POLICY_FIELDS = {
    "max_provisioning_minutes",
    "allow_always_run_strategy",
    "max_session_applies_to_always",
    "allow_orphan_deletion_policy",
}


def test_spec_has_the_seed_fields_plus_game_overrides_library_and_admin_policy() -> None:
    assert (
        set(EmulatorConfigSpec.model_fields)
        == SEED_CONFIG_FIELDS | {"game_overrides", "game_library"} | ADMIN_POLICY_FIELDS
    )


def test_admin_policy_defaults_bound_every_vm() -> None:
    spec = EmulatorConfigSpec.model_validate(emulator_config_spec())
    assert spec.max_provisioning_minutes == 30
    assert spec.allow_always_run_strategy is True
    assert spec.max_session_applies_to_always is True
    assert spec.allow_orphan_deletion_policy is False


@pytest.mark.parametrize("minutes", [0, -1, 24 * 60 + 1])
def test_max_provisioning_minutes_is_bounded(minutes: int) -> None:
    with pytest.raises(ValidationError) as info:
        EmulatorConfigSpec.model_validate(emulator_config_spec(maxProvisioningMinutes=minutes))
    assert info.value.errors()[0]["loc"] == ("maxProvisioningMinutes",)


def test_seed_provider_configuration_format_parses() -> None:
    # The seed's `preferred_providers` example, snake_case as written there.
    spec = EmulatorConfigSpec.model_validate(
        emulator_config_spec(
            preferredProviders=[
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
            ]
        )
    )
    first, second = spec.preferred_providers
    assert first.preset_override is VMPreset.PREMIUM
    assert first.regions == ["us-central", "us-east"]
    assert second.provider is CloudProvider.CLOUDYPAD_GCP
    assert (second.preset_override, second.regions) == (None, None)
    assert second.cost_per_hour_limit == 3.0


def test_provider_preference_defaults() -> None:
    entry = ProviderPreference.model_validate({"provider": "tensordock", "priority": 1})
    assert entry.enabled is True
    assert (entry.preset_override, entry.cost_per_hour_limit, entry.regions) == (None, None, None)


def test_spec_defaults() -> None:
    data = emulator_config_spec()
    del data["costPerHourLimit"], data["gameOverrides"]
    spec = EmulatorConfigSpec.model_validate(data)
    assert spec.cost_per_hour_limit is None
    assert spec.game_overrides == []


def test_spec_serialises_with_camel_case_aliases() -> None:
    spec = EmulatorConfigSpec.model_validate(emulator_config_spec())
    dumped = spec.model_dump(mode="json")
    assert set(dumped) == {
        "consoleType",
        "preferredProviders",
        "defaultPreset",
        "costPerHourLimit",
        "minCpu",
        "minRamGb",
        "requiresGpu",
        "maxSessionHours",
        "gameOverrides",
        "maxProvisioningMinutes",
        "allowAlwaysRunStrategy",
        "maxSessionAppliesToAlways",
        "allowOrphanDeletionPolicy",
        "gameLibrary",
    }
    assert set(dumped["preferredProviders"][0]) == {
        "provider",
        "priority",
        "enabled",
        "presetOverride",
        "costPerHourLimit",
        "regions",
    }
    assert set(dumped["gameOverrides"][0]) == {"gameId", "preset"}
    assert EmulatorConfigSpec.model_validate(dumped) == spec


def test_spec_accepts_snake_case() -> None:
    camel = EmulatorConfigSpec.model_validate(emulator_config_spec())
    snake = EmulatorConfigSpec.model_validate(camel.model_dump(mode="json", by_alias=False))
    assert snake == camel


def test_providers_by_priority_sorts_without_dropping_disabled() -> None:
    spec = EmulatorConfigSpec.model_validate(
        emulator_config_spec(
            preferredProviders=[
                provider_entry("cloudypad_aws", 30),
                provider_entry("tensordock", 10, enabled=False),
                provider_entry("cloudypad_gcp", 20),
            ]
        )
    )
    assert [p.priority for p in spec.providers_by_priority()] == [10, 20, 30]


# --- the seed's validation rules, one field-specific error per bad value ---------------------


@pytest.mark.parametrize("console", ["n64", "Wii", "ds"])
def test_unknown_console_names_the_field(console: str) -> None:
    reject(EmulatorConfigSpec, emulator_config_spec(consoleType=console), "console_type")


@pytest.mark.parametrize("provider", ["linode", "cloudypad", "gcp"])
def test_unknown_provider_names_the_entry(provider: str) -> None:
    providers = [provider_entry("tensordock", 1), provider_entry(provider, 2)]
    reject(
        EmulatorConfigSpec,
        emulator_config_spec(preferredProviders=providers),
        "preferred_providers",
        1,
        "provider",
    )


@pytest.mark.parametrize("cost", [-0.01, -1, -100])
def test_negative_console_cost_names_the_field(cost: float) -> None:
    error = reject(
        EmulatorConfigSpec, emulator_config_spec(costPerHourLimit=cost), "cost_per_hour_limit"
    )
    assert error.errors()[0]["type"] == "greater_than_equal"


@pytest.mark.parametrize("cost", [-0.01, -2.5])
def test_negative_provider_cost_names_the_entry(cost: float) -> None:
    providers = [provider_entry("tensordock", 1, costPerHourLimit=cost)]
    reject(
        EmulatorConfigSpec,
        emulator_config_spec(preferredProviders=providers),
        "preferred_providers",
        0,
        "cost_per_hour_limit",
    )


def test_zero_costs_are_allowed() -> None:
    providers = [provider_entry("tensordock", 1, costPerHourLimit=0)]
    spec = EmulatorConfigSpec.model_validate(
        emulator_config_spec(costPerHourLimit=0, preferredProviders=providers)
    )
    assert spec.cost_per_hour_limit == 0
    assert spec.preferred_providers[0].cost_per_hour_limit == 0


def test_duplicate_priorities_name_the_list() -> None:
    providers = [provider_entry("tensordock", 1), provider_entry("cloudypad_gcp", 1)]
    error = reject(
        EmulatorConfigSpec,
        emulator_config_spec(preferredProviders=providers),
        "preferred_providers",
    )
    assert "priorities must be unique" in error_message(error)


def test_duplicate_providers_name_the_list() -> None:
    providers = [provider_entry("tensordock", 1), provider_entry("tensordock", 2)]
    error = reject(
        EmulatorConfigSpec,
        emulator_config_spec(preferredProviders=providers),
        "preferred_providers",
    )
    assert "at most once" in error_message(error)


def test_no_enabled_provider_names_the_list() -> None:
    providers = [
        provider_entry("tensordock", 1, enabled=False),
        provider_entry("cloudypad_gcp", 2, enabled=False),
    ]
    error = reject(
        EmulatorConfigSpec,
        emulator_config_spec(preferredProviders=providers),
        "preferred_providers",
    )
    assert "at least one enabled" in error_message(error)


def test_one_enabled_provider_is_enough() -> None:
    providers = [
        provider_entry("tensordock", 1, enabled=False),
        provider_entry("cloudypad_gcp", 2),
    ]
    assert EmulatorConfigSpec.model_validate(emulator_config_spec(preferredProviders=providers))


def test_empty_provider_list_names_the_list() -> None:
    reject(EmulatorConfigSpec, emulator_config_spec(preferredProviders=[]), "preferred_providers")


def test_duplicate_game_overrides_name_the_list() -> None:
    overrides = [
        {"gameId": "zelda-totk", "preset": "premium"},
        {"gameId": "zelda-totk", "preset": "advanced"},
    ]
    error = reject(
        EmulatorConfigSpec, emulator_config_spec(gameOverrides=overrides), "game_overrides"
    )
    assert "unique" in error_message(error)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"gameId": "Zelda TOTK", "preset": "premium"}, "game_id"),
        ({"gameId": "zelda-totk", "preset": "ultra"}, "preset"),
        ({"preset": "premium"}, "game_id"),
        ({"gameId": "zelda-totk"}, "preset"),
        ({"gameId": "zelda-totk", "preset": "premium", "note": "x"}, "note"),
    ],
)
def test_bad_game_override_names_the_entry_field(override: dict[str, Any], field: str) -> None:
    reject(
        EmulatorConfigSpec,
        emulator_config_spec(gameOverrides=[override]),
        "game_overrides",
        0,
        field,
    )


@pytest.mark.parametrize(
    ("key", "value", "loc"),
    [
        ("priority", 0, ("priority",)),
        ("priority", 1001, ("priority",)),
        ("presetOverride", "ultra", ("preset_override",)),
        ("regions", [""], ("regions", 0)),
        ("enabled", "sometimes", ("enabled",)),
        ("weight", 3, ("weight",)),
    ],
)
def test_bad_provider_entry_names_the_entry_field(
    key: str, value: Any, loc: tuple[str | int, ...]
) -> None:
    entry = provider_entry("tensordock", 1) | {key: value}
    data = emulator_config_spec(preferredProviders=[entry])
    reject(EmulatorConfigSpec, data, "preferred_providers", 0, *loc)


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("defaultPreset", "ultra", "default_preset"),
        ("minCpu", 0, "min_cpu"),
        ("minRamGb", 0, "min_ram_gb"),
        ("maxSessionHours", 0, "max_session_hours"),
        ("maxSessionHours", 721, "max_session_hours"),
        ("requiresGpu", "maybe", "requires_gpu"),
        ("extraField", True, "extra_field"),
    ],
)
def test_other_bad_values_name_their_field(key: str, value: Any, field: str) -> None:
    reject(EmulatorConfigSpec, emulator_config_spec(**{key: value}), field)


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("consoleType", "console_type"),
        ("preferredProviders", "preferred_providers"),
        ("defaultPreset", "default_preset"),
        ("minCpu", "min_cpu"),
        ("minRamGb", "min_ram_gb"),
        ("requiresGpu", "requires_gpu"),
        ("maxSessionHours", "max_session_hours"),
    ],
)
def test_seed_required_fields_are_required(key: str, field: str) -> None:
    data = emulator_config_spec()
    del data[key]
    error = reject(EmulatorConfigSpec, data, field)
    assert error.errors()[0]["type"] == "missing"


def test_game_override_model() -> None:
    override = GameOverride.model_validate(
        {"gameId": "xenoblade-chronicles-3d", "preset": "premium"}
    )
    assert override.preset is VMPreset.PREMIUM
    assert override.model_dump(mode="json") == {
        "gameId": "xenoblade-chronicles-3d",
        "preset": "premium",
    }


@pytest.mark.parametrize("console", list(ConsoleType))
def test_every_console_is_accepted(console: ConsoleType) -> None:
    spec = EmulatorConfigSpec.model_validate(emulator_config_spec(consoleType=console.value))
    assert spec.console_type is console


def test_game_library_validation_names_the_field() -> None:
    library = {"source": "s3", "url": "s3://retro-games/nes"}
    spec = EmulatorConfigSpec.model_validate(emulator_config_spec(gameLibrary=library))
    assert spec.game_library is not None
    assert spec.game_library.mount_path == "/srv/games"
    for bad, field in (
        ({"source": "ftp", "url": "s3://retro-games/nes"}, "source"),
        ({"source": "http", "url": "s3://retro-games/nes"}, "url"),
        ({"source": "s3", "url": "s3://Bad_Bucket/x"}, "url"),
        (
            {"source": "http", "url": "https://x.example/games", "mountPath": "relative"},
            "mountPath",
        ),
        ({"source": "s3", "url": "s3://games", "credentialsSecretRef": {"name": "Bad"}}, "name"),
    ):
        with pytest.raises(ValidationError) as raised:
            EmulatorConfigSpec.model_validate(emulator_config_spec(gameLibrary=bad))
        locations = [str(part) for error in raised.value.errors() for part in error["loc"]]
        assert field in locations, (bad, raised.value)
