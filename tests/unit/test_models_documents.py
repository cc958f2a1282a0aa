"""The seed's Mongo documents and API responses: snake_case names, defaults, validation."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gamevm.models import (
    CloudProvider,
    ConsoleType,
    EmulatorConfigDocument,
    EmulatorConfigSpec,
    VMDocument,
    VMPreset,
    VMResponse,
    VMStatus,
    VMStatusResponse,
    documents,
)
from tests.unit.test_models_support import (
    SEED_EMULATOR_CONFIG_DOCUMENT_FIELDS,
    SEED_VM_DOCUMENT_FIELDS,
    emulator_config_document,
    emulator_config_spec,
    error_message,
    reject,
    vm_document,
)

SEED_VM_DOCUMENT_REQUIRED = {"vm_id", "status", "preset", "console_type", "provider"}
SEED_EMULATOR_CONFIG_DOCUMENT_REQUIRED = {
    "console_type",
    "default_preset",
    "min_cpu",
    "min_ram_gb",
    "requires_gpu",
    "max_session_hours",
}
SEED_VM_RESPONSE_FIELDS = {
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
    "auto_stop_timeout",
    "gaming_environment_ready",
    "last_activity",
}
SEED_VM_RESPONSE_REQUIRED = SEED_VM_RESPONSE_FIELDS - {
    "ip_address",
    "wolf_port",
    "ssh_port",
    "gaming_environment_ready",
    "last_activity",
}
SEED_VM_STATUS_RESPONSE_FIELDS = {
    "vm_id",
    "status",
    "ip_address",
    "uptime_seconds",
    "last_activity",
    "gaming_environment_ready",
}

FIELD_SETS: list[tuple[type[BaseModel], set[str]]] = [
    (VMDocument, SEED_VM_DOCUMENT_FIELDS),
    (EmulatorConfigDocument, SEED_EMULATOR_CONFIG_DOCUMENT_FIELDS),
    (VMResponse, SEED_VM_RESPONSE_FIELDS),
    (VMStatusResponse, SEED_VM_STATUS_RESPONSE_FIELDS),
]


def required_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, field in model.model_fields.items() if field.is_required()}


def documented_additions() -> set[str]:
    """Field names the documents module docstring declares as additions to the seed."""
    assert documents.__doc__ is not None
    return set(re.findall(r"`([a-z_]+)`", documents.__doc__))


# --- field names: the seed's, exactly; additions documented ---------------------------------


@pytest.mark.parametrize(("model", "seed"), FIELD_SETS, ids=lambda x: getattr(x, "__name__", ""))
def test_document_keeps_every_seed_field(model: type[BaseModel], seed: set[str]) -> None:
    assert seed <= set(model.model_fields)


@pytest.mark.parametrize(("model", "seed"), FIELD_SETS, ids=lambda x: getattr(x, "__name__", ""))
def test_every_addition_to_the_seed_is_documented(model: type[BaseModel], seed: set[str]) -> None:
    additions = set(model.model_fields) - seed
    undocumented = additions - documented_additions()
    assert not undocumented, f"{model.__name__} adds undocumented fields {undocumented}"


def test_responses_add_nothing_to_the_seed() -> None:
    assert set(VMResponse.model_fields) == SEED_VM_RESPONSE_FIELDS
    assert set(VMStatusResponse.model_fields) == SEED_VM_STATUS_RESPONSE_FIELDS


def test_game_id_is_carried_into_the_mirror() -> None:
    # Issue 2, item 3: VMDocument carries the GameVM's gameId as its own field.
    assert (
        VMDocument.model_validate(vm_document(game_id="mario-odyssey")).game_id == "mario-odyssey"
    )
    assert "game_id" in documented_additions()


@pytest.mark.parametrize(
    ("model", "seed_required"),
    [
        (VMDocument, SEED_VM_DOCUMENT_REQUIRED),
        (EmulatorConfigDocument, SEED_EMULATOR_CONFIG_DOCUMENT_REQUIRED),
        (VMResponse, SEED_VM_RESPONSE_REQUIRED),
        (VMStatusResponse, {"vm_id", "status"}),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_required_fields_are_the_seeds(model: type[BaseModel], seed_required: set[str]) -> None:
    assert required_fields(model) == seed_required


def test_documents_serialise_with_snake_case_names() -> None:
    vm = VMDocument.model_validate(vm_document())
    assert set(vm.model_dump()) == set(VMDocument.model_fields)
    config = EmulatorConfigDocument.model_validate(emulator_config_document())
    assert set(config.model_dump()) == set(EmulatorConfigDocument.model_fields)


def test_collection_names_are_the_seeds() -> None:
    assert documents.VM_COLLECTION == "vm_instances"
    assert documents.EMULATOR_CONFIG_COLLECTION == "emulator_configs"


def test_documents_ignore_mongo_id_and_unknown_keys() -> None:
    vm = VMDocument.model_validate(vm_document(_id="65f0c0ffee", legacy_flag=True))
    assert "_id" not in vm.model_dump()
    config = EmulatorConfigDocument.model_validate(emulator_config_document(_id="65f0"))
    assert config.console_type is ConsoleType.SWITCH


# --- defaults ---------------------------------------------------------------------------------


def test_vm_document_defaults() -> None:
    before = datetime.now(UTC)
    vm = VMDocument.model_validate(vm_document())
    assert vm.wolf_port == 47999
    assert vm.ssh_port == 22
    assert vm.auto_stop_timeout == 900
    assert vm.provider_metadata == {}
    assert vm.gaming_environment_ready is False
    assert vm.cloudypad_configured is False
    assert vm.games_mounted is False
    for optional in (
        "ip_address",
        "ssh_private_key",
        "provider_instance_id",
        "last_activity",
        "last_moonlight_connection",
        "user_location",
        "game_id",
    ):
        assert getattr(vm, optional) is None, optional
    # created_at / updated_at default to timezone-aware "utcnow".
    assert vm.created_at.tzinfo is not None
    assert before <= vm.created_at <= datetime.now(UTC)
    assert before <= vm.updated_at <= datetime.now(UTC)


def test_vm_document_default_metadata_is_not_shared() -> None:
    first = VMDocument.model_validate(vm_document())
    first.provider_metadata["hostnode"] = "abc"
    assert VMDocument.model_validate(vm_document()).provider_metadata == {}


def test_emulator_config_document_defaults() -> None:
    data = emulator_config_document()
    del data["preferred_providers"], data["cost_per_hour_limit"]
    config = EmulatorConfigDocument.model_validate(data)
    assert config.preferred_providers == []
    assert config.cost_per_hour_limit is None
    assert config.game_overrides == []


def test_seed_emulator_config_document_example_keeps_provider_dicts() -> None:
    config = EmulatorConfigDocument.model_validate(emulator_config_document())
    assert config.preferred_providers == emulator_config_document()["preferred_providers"]


def test_response_defaults() -> None:
    now = datetime.now(UTC)
    response = VMResponse(
        vm_id="vm-1",
        status=VMStatus.RUNNING,
        preset=VMPreset.RETRO,
        console_type=ConsoleType.NES,
        provider=CloudProvider.TENSORDOCK,
        created_at=now,
        updated_at=now,
        auto_stop_timeout=900,
    )
    assert (response.wolf_port, response.ssh_port) == (47999, 22)
    assert response.gaming_environment_ready is False
    assert (response.ip_address, response.last_activity) == (None, None)
    status = VMStatusResponse(vm_id="vm-1", status=VMStatus.STOPPED)
    assert status.gaming_environment_ready is False
    assert (status.ip_address, status.uptime_seconds, status.last_activity) == (None, None, None)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        {"latitude": 90.5, "longitude": 0},
        {"latitude": -90.5, "longitude": 0},
        {"latitude": 0, "longitude": 180.5},
        {"latitude": 0, "longitude": -180.5},
        {"latitude": float("nan"), "longitude": 0},
        {"longitude": 10},
        {"latitude": 10},
    ],
)
def test_vm_document_gps_out_of_range_names_the_field(location: dict[str, float]) -> None:
    error = reject(VMDocument, vm_document(user_location=location), "user_location")
    assert "Invalid GPS coordinates" in error_message(error)


@pytest.mark.parametrize(
    "location",
    [
        {"latitude": 90, "longitude": 180},
        {"latitude": -90, "longitude": -180},
        {"latitude": 32.7767, "longitude": -96.7970},
    ],
)
def test_vm_document_gps_bounds_are_inclusive(location: dict[str, float]) -> None:
    assert VMDocument.model_validate(vm_document(user_location=location)).user_location == location


@pytest.mark.parametrize("timeout", [0, -1])
def test_vm_document_non_positive_timeout_names_the_field(timeout: int) -> None:
    reject(VMDocument, vm_document(auto_stop_timeout=timeout), "auto_stop_timeout")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("console_type", "n64"),
        ("provider", "linode"),
        ("status", "booting"),
        ("preset", "ultra"),
    ],
)
def test_vm_document_unknown_enum_values_name_the_field(field: str, value: str) -> None:
    reject(VMDocument, vm_document(**{field: value}), field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("console_type", "n64"),
        ("default_preset", "ultra"),
        ("cost_per_hour_limit", -0.5),
    ],
)
def test_emulator_config_document_bad_values_name_the_field(field: str, value: Any) -> None:
    reject(EmulatorConfigDocument, emulator_config_document(**{field: value}), field)


PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"


def test_ssh_private_key_is_refused() -> None:
    error = reject(VMDocument, vm_document(ssh_private_key=PRIVATE_KEY), "ssh_private_key")
    assert "never stored" in error_message(error)


def test_ssh_private_key_refusal_does_not_echo_the_key() -> None:
    # The error may be logged: it must not carry the secret it refused.
    with pytest.raises(ValidationError) as info:
        VMDocument.model_validate(vm_document(ssh_private_key=PRIVATE_KEY))
    assert "OPENSSH" not in str(info.value)
    assert "b3BlbnNz" not in repr(info.value)


def test_ssh_private_key_null_is_accepted() -> None:
    assert VMDocument.model_validate(vm_document(ssh_private_key=None)).ssh_private_key is None


# --- responses ------------------------------------------------------------------------------


def full_vm_document(**overrides: Any) -> VMDocument:
    started = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    data = vm_document(
        status="running",
        created_at=started - timedelta(minutes=5),
        updated_at=started + timedelta(minutes=1),
        ip_address="203.0.113.7",
        wolf_port=48000,
        ssh_port=2222,
        auto_stop_timeout=1800,
        provider_instance_id="td-42",
        provider_metadata={"hostnode": "abc"},
        gaming_environment_ready=True,
        cloudypad_configured=True,
        last_activity=started + timedelta(minutes=30),
        last_moonlight_connection=started + timedelta(minutes=29),
        user_location={"latitude": 32.7767, "longitude": -96.7970},
        game_id="mario-odyssey",
        started_at=started,
    )
    data.update(overrides)
    return VMDocument.model_validate(data)


def test_vm_response_from_document_copies_the_seed_subset() -> None:
    doc = full_vm_document()
    response = VMResponse.from_document(doc)
    for field in SEED_VM_RESPONSE_FIELDS:
        assert getattr(response, field) == getattr(doc, field), field
    dumped = response.model_dump()
    assert set(dumped) == SEED_VM_RESPONSE_FIELDS
    assert "provider_metadata" not in dumped
    assert "ssh_private_key" not in dumped


def test_vm_response_from_minimal_document() -> None:
    doc = VMDocument.model_validate(vm_document())
    response = VMResponse.from_document(doc)
    assert response.auto_stop_timeout == 900
    assert response.created_at == doc.created_at


def test_status_response_uptime_counts_from_session_start() -> None:
    doc = full_vm_document()
    assert doc.started_at is not None
    now = doc.started_at + timedelta(seconds=125, milliseconds=900)
    status = VMStatusResponse.from_document(doc, now=now)
    assert status.uptime_seconds == 125
    assert status.vm_id == doc.vm_id
    assert status.status is VMStatus.RUNNING
    assert status.ip_address == "203.0.113.7"
    assert status.last_activity == doc.last_activity
    assert status.gaming_environment_ready is True


def test_status_response_uptime_defaults_to_now() -> None:
    doc = full_vm_document(started_at=datetime.now(UTC) - timedelta(seconds=60))
    uptime = VMStatusResponse.from_document(doc).uptime_seconds
    assert uptime is not None
    assert 60 <= uptime <= 70


@pytest.mark.parametrize(
    "status", [s for s in VMStatus if s is not VMStatus.RUNNING], ids=lambda s: s.value
)
def test_status_response_has_no_uptime_unless_running(status: VMStatus) -> None:
    doc = full_vm_document(status=status)
    assert VMStatusResponse.from_document(doc).uptime_seconds is None


def test_status_response_has_no_uptime_without_a_start() -> None:
    doc = full_vm_document(started_at=None)
    assert VMStatusResponse.from_document(doc).uptime_seconds is None


def test_status_response_uptime_never_negative() -> None:
    doc = full_vm_document()
    assert doc.started_at is not None
    now = doc.started_at - timedelta(seconds=30)  # clock skew between writers
    assert VMStatusResponse.from_document(doc, now=now).uptime_seconds == 0


def test_status_response_accepts_naive_utc_datetimes_from_mongo() -> None:
    # PyMongo returns naive UTC datetimes unless the client is tz_aware.
    started = datetime(2026, 11, 26, 15, 0)
    doc = full_vm_document(started_at=started)
    now = datetime(2026, 11, 26, 15, 2, tzinfo=UTC)
    assert VMStatusResponse.from_document(doc, now=now).uptime_seconds == 120
    assert VMStatusResponse.from_document(
        doc, now=datetime(2026, 11, 26, 15, 3)
    ).uptime_seconds == (180)
    assert VMStatusResponse.from_document(doc).uptime_seconds is not None


def test_emulator_config_spec_dumps_into_the_seed_document_format() -> None:
    # The mirror's path: a Kubernetes spec, dumped by field name, is a seed document whose
    # `preferred_providers` entries use the seed's snake_case keys.
    spec = EmulatorConfigSpec.model_validate(emulator_config_spec())
    config = EmulatorConfigDocument.model_validate(spec.model_dump(mode="json", by_alias=False))
    assert config.console_type is spec.console_type
    assert set(config.preferred_providers[0]) == {
        "provider",
        "priority",
        "enabled",
        "preset_override",
        "cost_per_hour_limit",
        "regions",
    }
    assert config.game_overrides == [{"game_id": "zelda-totk", "preset": "premium"}]
