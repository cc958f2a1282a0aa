"""GameVM spec (the seed's VMCreateRequest plus power and deletion policy) and status."""

from datetime import UTC, datetime
from typing import Any

import pytest

from gamevm.models import (
    CloudProvider,
    ConsoleType,
    DeletionPolicy,
    GameVMSpec,
    GameVMStatus,
    GeoLocation,
    RunStrategy,
    VMCreateRequest,
    VMPreset,
    VMStatus,
)
from tests.unit.test_models_support import gamevm_spec, reject

SEED_REQUEST_FIELDS = {
    "console_type",
    "game_id",
    "provider",
    "auto_stop_timeout",
    "user_id",
    "user_location",
}


# --- fields, defaults and the seed example -------------------------------------------------


def test_create_request_has_exactly_the_seed_fields() -> None:
    assert set(VMCreateRequest.model_fields) == SEED_REQUEST_FIELDS
    assert set(GameVMSpec.model_fields) == SEED_REQUEST_FIELDS | {"run_strategy", "deletion_policy"}


def test_seed_usage_example_builds() -> None:
    request = VMCreateRequest(
        console_type=ConsoleType.SWITCH,
        game_id="mario-odyssey",
        user_id="user123",
        user_location=GeoLocation(latitude=32.7767, longitude=-96.7970),
        auto_stop_timeout=1800,
    )
    assert request.console_type is ConsoleType.SWITCH
    assert request.user_location is not None
    assert request.user_location.as_tuple() == (32.7767, -96.7970)
    assert request.auto_stop_timeout == 1800


def test_spec_defaults() -> None:
    spec = GameVMSpec.model_validate({"consoleType": "nes"})
    assert spec.auto_stop_timeout == 900
    assert spec.run_strategy is RunStrategy.MANUAL
    assert spec.deletion_policy is DeletionPolicy.DELETE
    assert (spec.game_id, spec.provider, spec.user_id, spec.user_location) == (
        None,
        None,
        None,
        None,
    )


def test_console_type_is_required() -> None:
    error = reject(GameVMSpec, {"autoStopTimeout": 900}, "console_type")
    assert error.errors()[0]["type"] == "missing"


# --- camelCase on the wire, snake_case accepted --------------------------------------------


def test_spec_serialises_with_camel_case_aliases() -> None:
    spec = GameVMSpec.model_validate(gamevm_spec(provider="tensordock"))
    assert set(spec.model_dump()) == {
        "consoleType",
        "gameId",
        "provider",
        "autoStopTimeout",
        "userId",
        "userLocation",
        "runStrategy",
        "deletionPolicy",
    }
    assert spec.model_dump(mode="json", exclude_none=True) == {
        **gamevm_spec(provider="tensordock"),
        "runStrategy": "Manual",
        "deletionPolicy": "Delete",
    }


def test_spec_accepts_snake_case_and_camel_case_alike() -> None:
    camel = GameVMSpec.model_validate(gamevm_spec(runStrategy="Always"))
    snake = GameVMSpec.model_validate(
        {
            "console_type": "switch",
            "game_id": "mario-odyssey",
            "user_id": "user123",
            "user_location": {"latitude": 32.7767, "longitude": -96.7970},
            "auto_stop_timeout": 1800,
            "run_strategy": "Always",
        }
    )
    assert camel == snake
    assert GameVMSpec.model_validate(camel.model_dump(mode="json")) == camel


# --- the seed's validation rules, one field-specific error per bad value ---------------------


@pytest.mark.parametrize(
    ("location", "field"),
    [
        ({"latitude": 90.0001, "longitude": 0}, "latitude"),
        ({"latitude": -91, "longitude": 0}, "latitude"),
        ({"latitude": 0, "longitude": 180.5}, "longitude"),
        ({"latitude": 0, "longitude": -181}, "longitude"),
        ({"latitude": float("nan"), "longitude": 0}, "latitude"),
        ({"latitude": 0, "longitude": float("inf")}, "longitude"),
        ({"longitude": 0}, "latitude"),
        ({"latitude": 0}, "longitude"),
        ({"latitude": "north", "longitude": 0}, "latitude"),
    ],
)
def test_gps_out_of_range_names_the_coordinate(location: dict[str, Any], field: str) -> None:
    reject(GameVMSpec, gamevm_spec(userLocation=location), "user_location", field)


@pytest.mark.parametrize(
    ("latitude", "longitude"), [(90, 180), (-90, -180), (0, 0), (32.7767, -96.797)]
)
def test_gps_bounds_are_inclusive(latitude: float, longitude: float) -> None:
    location = {"latitude": latitude, "longitude": longitude}
    spec = GameVMSpec.model_validate(gamevm_spec(userLocation=location))
    assert spec.user_location == GeoLocation(latitude=latitude, longitude=longitude)


def test_user_location_rejects_unknown_keys() -> None:
    location = {"latitude": 1, "longitude": 2, "altitude": 3}
    reject(GameVMSpec, gamevm_spec(userLocation=location), "user_location", "altitude")


@pytest.mark.parametrize("timeout", [0, -1, -900])
def test_non_positive_timeout_names_the_field(timeout: int) -> None:
    error = reject(GameVMSpec, gamevm_spec(autoStopTimeout=timeout), "auto_stop_timeout")
    assert error.errors()[0]["type"] == "greater_than"


def test_timeout_has_an_upper_bound_of_one_week() -> None:
    assert GameVMSpec.model_validate(gamevm_spec(autoStopTimeout=7 * 24 * 3600))
    reject(GameVMSpec, gamevm_spec(autoStopTimeout=7 * 24 * 3600 + 1), "auto_stop_timeout")


def test_timeout_must_be_an_integer() -> None:
    reject(GameVMSpec, gamevm_spec(autoStopTimeout=1.5), "auto_stop_timeout")


@pytest.mark.parametrize("console", ["n64", "Switch", "3DS", "", "virtualboy"])
def test_unknown_console_names_the_field(console: str) -> None:
    error = reject(GameVMSpec, gamevm_spec(consoleType=console), "console_type")
    assert error.errors()[0]["type"] == "enum"


@pytest.mark.parametrize("provider", ["linode", "cloudypad", "TENSORDOCK", "cloudypad-gcp"])
def test_unknown_provider_names_the_field(provider: str) -> None:
    reject(GameVMSpec, gamevm_spec(provider=provider), "provider")


@pytest.mark.parametrize("provider", list(CloudProvider))
def test_every_provider_is_accepted(provider: CloudProvider) -> None:
    assert GameVMSpec.model_validate(gamevm_spec(provider=provider.value)).provider is provider


@pytest.mark.parametrize("console", list(ConsoleType))
def test_every_console_is_accepted(console: ConsoleType) -> None:
    spec = GameVMSpec.model_validate(gamevm_spec(consoleType=console.value))
    assert spec.console_type is console


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("runStrategy", "Sometimes", "run_strategy"),
        ("runStrategy", "always", "run_strategy"),
        ("deletionPolicy", "Keep", "deletion_policy"),
        ("gameId", "Mario Odyssey", "game_id"),
        ("gameId", "", "game_id"),
        ("gameId", "-leading-dash", "game_id"),
        ("gameId", "x" * 129, "game_id"),
        ("userId", "", "user_id"),
    ],
)
def test_other_bad_values_name_their_field(key: str, value: Any, field: str) -> None:
    reject(GameVMSpec, gamevm_spec(**{key: value}), field)


@pytest.mark.parametrize("key", ["replicas", "preset", "status", "user_location_hint"])
def test_spec_rejects_unknown_fields(key: str) -> None:
    error = reject(GameVMSpec, gamevm_spec(**{key: 1}), key)
    assert error.errors()[0]["type"] == "extra_forbidden"


# --- status ---------------------------------------------------------------------------------

DESIGN_STATUS_FIELDS = {
    "phase",
    "vmId",
    "preset",
    "provider",
    "region",
    "gameId",
    "providerInstanceId",
    "ipAddress",
    "wolfPort",
    "sshPort",
    "costPerHour",
    "startedAt",
    "lastActivity",
    "lastMoonlightConnection",
    "gamingEnvironmentReady",
    "cloudypadConfigured",
    "gamesMounted",
    "decision",
    "conditions",
    "observedGeneration",
}


def test_status_carries_every_design_field_in_camel_case() -> None:
    dumped = GameVMStatus().model_dump()
    missing = DESIGN_STATUS_FIELDS - set(dumped)
    assert not missing, f"status lacks design fields {missing}"


def test_status_defaults() -> None:
    status = GameVMStatus()
    assert status.phase is None
    assert status.wolf_port == 47999
    assert status.ssh_port == 22
    assert status.gaming_environment_ready is False
    assert status.cloudypad_configured is False
    assert status.games_mounted is False
    assert status.provider_metadata == {}
    assert status.conditions == []
    assert GameVMStatus().provider_metadata is not status.provider_metadata


def test_status_ignores_unknown_keys_at_every_level() -> None:
    status = GameVMStatus.model_validate(
        {
            "phase": "running",
            "preset": "premium",
            "provider": "tensordock",
            "kopf": {"progress": {}},
            "somethingNew": 1,
            "decision": {
                "chosenProvider": "tensordock",
                "candidates": [{"provider": "cloudypad_gcp", "extra": True}],
                "futureField": "x",
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "WolfAnswering",
                    "lastTransitionTime": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
                    "unknown": "ignored",
                }
            ],
        }
    )
    assert status.phase is VMStatus.RUNNING
    assert status.preset is VMPreset.PREMIUM
    assert status.decision is not None
    assert status.decision.chosen_provider is CloudProvider.TENSORDOCK
    assert status.decision.candidates[0].provider is CloudProvider.CLOUDYPAD_GCP
    assert status.conditions[0].reason == "WolfAnswering"
    assert "kopf" not in status.model_dump()


def test_status_still_validates_known_fields() -> None:
    reject(GameVMStatus, {"phase": "booting"}, "phase")
    reject(GameVMStatus, {"provider": "linode"}, "provider")


def test_status_round_trips_through_json_with_aliases() -> None:
    status = GameVMStatus.model_validate(
        {
            "phase": "configuring",
            "vmId": "0b9f",
            "ipAddress": "203.0.113.7",
            "costPerHour": 0.52,
            "startedAt": "2026-11-26T16:00:00Z",
            "provider_metadata": {"hostnode": "abc"},
        }
    )
    dumped = status.model_dump(mode="json", exclude_none=True)
    assert dumped["vmId"] == "0b9f"
    assert dumped["providerMetadata"] == {"hostnode": "abc"}
    assert GameVMStatus.model_validate(dumped) == status
