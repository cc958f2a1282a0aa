"""Mapping GameVM / EmulatorConfig objects to the seed's documents (pure, no server)."""

import json
from datetime import UTC, datetime

import pytest

from gamevm.mirror.documents import stored_fields
from gamevm.mirror.mapping import (
    MappingError,
    config_document_from,
    terminated_vm_document_from,
    vm_document_from,
)
from gamevm.models.documents import EmulatorConfigDocument, VMDocument
from gamevm.models.enums import CloudProvider, ConsoleType, VMPreset, VMStatus
from tests.fixtures.mongo import SECRET_VALUES, emulator_config_body, gamevm_body
from tests.unit.test_models_support import (
    SEED_EMULATOR_CONFIG_DOCUMENT_FIELDS as SEED_CONFIG_FIELDS,
)
from tests.unit.test_models_support import SEED_VM_DOCUMENT_FIELDS as SEED_VM_FIELDS


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_vm_document_field_for_field() -> None:
    body = gamevm_body("0b5e7c1e-1111-4a4a-9b9b-123456789abc", resource_version=4321)
    document = vm_document_from(body)
    assert document is not None
    expected = VMDocument(
        vm_id="0b5e7c1e-1111-4a4a-9b9b-123456789abc",
        status=VMStatus.RUNNING,
        preset=VMPreset.PREMIUM,
        console_type=ConsoleType.SWITCH,
        provider=CloudProvider.TENSORDOCK,
        created_at=_utc("2026-11-26T10:00:00Z"),
        updated_at=_utc("2026-11-26T10:20:05Z"),
        ip_address="203.0.113.10",
        wolf_port=47999,
        ssh_port=2222,
        ssh_private_key=None,
        auto_stop_timeout=1800,
        user_id="user123",
        provider_instance_id="td-0a1b2c3d",
        provider_metadata={
            "hostnode": "hn-dallas-17",
            "location": "Dallas, TX",
            "gpu": "rtx4090",
            "nested": {"zone": "a"},
            "region": "us-central-dallas",
            "cost_per_hour": 1.25,
            "instance_name": "gvm-0b5e7c1e",
        },
        gaming_environment_ready=True,
        cloudypad_configured=True,
        games_mounted=True,
        last_activity=_utc("2026-11-26T10:20:00Z"),
        last_moonlight_connection=_utc("2026-11-26T10:19:30Z"),
        user_location={"latitude": 32.7767, "longitude": -96.797},
        game_id="mario-odyssey",
        namespace="players",
        name="mario",
        access_secret_name="mario-access",
        started_at=_utc("2026-11-26T10:03:00.250000Z"),
        source_version="4321",
    )
    assert set(stored_fields(document)) >= SEED_VM_FIELDS
    for field in VMDocument.model_fields:
        assert getattr(document, field) == getattr(expected, field), field


def test_vm_document_has_no_secret_values() -> None:
    document = vm_document_from(gamevm_body())
    assert document is not None
    text = json.dumps(document.model_dump(mode="json"))
    for secret in SECRET_VALUES:
        assert secret.strip() not in text
    assert "PRIVATE KEY" not in text
    assert document.ssh_private_key is None


def test_before_selection_no_document() -> None:
    body = gamevm_body(phase=None, status={"provider": None, "preset": None})
    assert vm_document_from(body) is None


def test_before_first_status_uses_seed_defaults() -> None:
    body = gamevm_body(spec={"provider": "cloudypad_aws", "consoleType": "gba"})
    body["status"] = {}
    document = vm_document_from(body)
    assert document is not None
    assert document.status is VMStatus.CREATING
    assert document.provider is CloudProvider.CLOUDYPAD_AWS
    assert document.preset is VMPreset.RETRO  # the console's default preset
    assert (document.wolf_port, document.ssh_port) == (47999, 22)
    assert document.provider_metadata == {}


def test_terminated_document() -> None:
    body = gamevm_body(resource_version=99)
    body["metadata"]["deletionTimestamp"] = "2026-11-26T11:00:00Z"
    document = terminated_vm_document_from(body)
    assert document is not None
    assert document.status is VMStatus.TERMINATED
    assert document.updated_at == _utc("2026-11-26T11:00:00Z")
    assert document.source_version == "99"


def test_orphaned_instance_stays_tracked() -> None:
    """deletionPolicy Orphan: the instance lives on, so its document is not terminated
    (the TTL index only purges terminated documents)."""
    body = gamevm_body(resource_version=99)
    body["metadata"]["deletionTimestamp"] = "2026-11-26T11:00:00Z"
    body["status"]["orphaned"] = True
    document = terminated_vm_document_from(body)
    assert document is not None
    assert document.status is not VMStatus.TERMINATED
    assert document.status.value == body["status"]["phase"]
    assert document.provider_metadata["orphaned"] is True


def test_unknown_spec_fields_are_ignored() -> None:
    body = gamevm_body(spec={"futureField": 1})
    assert vm_document_from(body) is not None


@pytest.mark.parametrize("missing", ["uid", "resourceVersion", "creationTimestamp"])
def test_missing_metadata_is_an_error(missing: str) -> None:
    body = gamevm_body()
    del body["metadata"][missing]
    with pytest.raises(MappingError):
        vm_document_from(body)


def test_config_document_in_seed_format() -> None:
    document = config_document_from(emulator_config_body(resource_version=501))
    expected = EmulatorConfigDocument(
        console_type=ConsoleType.SWITCH,
        preferred_providers=[
            {
                "provider": "tensordock",
                "priority": 1,
                "enabled": True,
                "preset_override": "premium",
                "cost_per_hour_limit": 2.5,
                "regions": ["us-central", "us-east"],
            },
            {
                "provider": "cloudypad_gcp",
                "priority": 2,
                "enabled": True,
                "preset_override": None,
                "cost_per_hour_limit": 3.0,
            },
        ],
        default_preset=VMPreset.PREMIUM,
        cost_per_hour_limit=4.0,
        min_cpu=8,
        min_ram_gb=16,
        requires_gpu=True,
        max_session_hours=4,
        game_overrides=[{"game_id": "zelda-totk", "preset": "premium"}],
        source_version="501",
    )
    assert document == expected
    assert set(stored_fields(document)) >= SEED_CONFIG_FIELDS


def test_stored_fields_are_bson_ready() -> None:
    document = vm_document_from(gamevm_body())
    assert document is not None
    fields = stored_fields(document)
    assert fields["status"] == "running"
    assert type(fields["status"]) is str
    assert fields["started_at"].microsecond == 250000
    assert fields["created_at"].tzinfo is not None
