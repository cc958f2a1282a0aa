"""The seed's enums, preset table and console -> preset mapping, value for value.

Split by entity: test_models_gamevm.py (GameVM spec/status), test_models_emulator_config.py,
test_models_documents.py (Mongo documents and API responses).
"""

from enum import Enum, StrEnum

import pytest

from gamevm.models import (
    CONSOLE_DEFAULT_PRESET,
    PRESET_RESOURCES,
    CloudProvider,
    ConsoleType,
    DeletionPolicy,
    GpuTier,
    PowerRequest,
    PresetResources,
    RunStrategy,
    VMPreset,
    VMStatus,
    names,
)
from gamevm.models.presets import gpu_rank, larger_preset, preset_rank

SEED_ENUMS: dict[type[Enum], dict[str, str]] = {
    VMPreset: {"RETRO": "retro", "ADVANCED": "advanced", "PREMIUM": "premium"},
    VMStatus: {
        "CREATING": "creating",
        "RUNNING": "running",
        "STOPPED": "stopped",
        "ERROR": "error",
        "TERMINATED": "terminated",
        "CONFIGURING": "configuring",
    },
    CloudProvider: {
        "TENSORDOCK": "tensordock",
        "CLOUDYPAD_GCP": "cloudypad_gcp",
        "CLOUDYPAD_AWS": "cloudypad_aws",
        "CLOUDYPAD_AZURE": "cloudypad_azure",
        "CLOUDYPAD_PAPERSPACE": "cloudypad_paperspace",
        "CLOUDYPAD_SCALEWAY": "cloudypad_scaleway",
    },
    ConsoleType: {
        "NES": "nes",
        "SNES": "snes",
        "GB": "gb",
        "GBC": "gbc",
        "GBA": "gba",
        "NDS": "nds",
        "N3DS": "3ds",
        "GAMECUBE": "gamecube",
        "WII": "wii",
        "SWITCH": "switch",
    },
}


@pytest.mark.parametrize("enum", list(SEED_ENUMS), ids=lambda e: e.__name__)
def test_seed_enum_has_exactly_the_seed_members_in_order(enum: type[Enum]) -> None:
    assert [(m.name, m.value) for m in enum] == list(SEED_ENUMS[enum].items())


@pytest.mark.parametrize("enum", list(SEED_ENUMS), ids=lambda e: e.__name__)
def test_seed_enum_is_a_str_enum(enum: type[Enum]) -> None:
    # The seed's enums are `(str, Enum)`: members compare equal to, and format as, their values.
    assert issubclass(enum, StrEnum)
    for member in enum:
        assert member == member.value
        assert f"{member}" == member.value
        assert enum(member.value) is member


def test_seed_enum_member_counts() -> None:
    assert [len(VMPreset), len(VMStatus), len(CloudProvider), len(ConsoleType)] == [3, 6, 6, 10]


def test_unknown_enum_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="n64"):
        ConsoleType("n64")
    with pytest.raises(ValueError, match="linode"):
        CloudProvider("linode")
    with pytest.raises(ValueError, match="Switch"):
        ConsoleType("Switch")  # values are case-sensitive, as in the seed


def test_operator_policy_enums() -> None:
    assert [m.value for m in RunStrategy] == ["Always", "Manual", "Halted"]
    assert [m.value for m in DeletionPolicy] == ["Delete", "Orphan"]
    assert [m.value for m in PowerRequest] == ["start", "stop"]
    assert [m.value for m in GpuTier] == ["none", "basic", "high-end"]


def test_preset_resource_table_is_the_seeds() -> None:
    assert {
        VMPreset.RETRO: PresetResources(vcpu=2, ram_gb=4, gpu=GpuTier.NONE),
        VMPreset.ADVANCED: PresetResources(vcpu=4, ram_gb=8, gpu=GpuTier.BASIC),
        VMPreset.PREMIUM: PresetResources(vcpu=8, ram_gb=16, gpu=GpuTier.HIGH_END),
    } == PRESET_RESOURCES


def test_preset_resources_are_immutable() -> None:
    with pytest.raises(AttributeError):
        PRESET_RESOURCES[VMPreset.RETRO].vcpu = 64  # type: ignore[misc]


# The seed's preset descriptions: "NES/SNES/GB/GBA", "DS/3DS", "GC/Wii/Switch"; GBC is a
# Game Boy variant, so retro.
SEED_PRESET_CONSOLES = {
    VMPreset.RETRO: {"nes", "snes", "gb", "gbc", "gba"},
    VMPreset.ADVANCED: {"nds", "3ds"},
    VMPreset.PREMIUM: {"gamecube", "wii", "switch"},
}


def test_console_default_preset_mapping_covers_every_console_once() -> None:
    assert set(CONSOLE_DEFAULT_PRESET) == set(ConsoleType)
    by_preset = {
        preset: {console.value for console, p in CONSOLE_DEFAULT_PRESET.items() if p is preset}
        for preset in VMPreset
    }
    assert by_preset == SEED_PRESET_CONSOLES


def test_presets_and_gpu_tiers_are_ordered_small_to_large() -> None:
    assert [preset_rank(p) for p in VMPreset] == [0, 1, 2]
    assert [gpu_rank(t) for t in GpuTier] == [0, 1, 2]
    ranks = [PRESET_RESOURCES[p] for p in VMPreset]
    assert [r.vcpu for r in ranks] == sorted(r.vcpu for r in ranks)
    assert [r.ram_gb for r in ranks] == sorted(r.ram_gb for r in ranks)
    assert [gpu_rank(r.gpu) for r in ranks] == [0, 1, 2]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (VMPreset.RETRO, VMPreset.PREMIUM, VMPreset.PREMIUM),
        (VMPreset.PREMIUM, VMPreset.ADVANCED, VMPreset.PREMIUM),
        (VMPreset.ADVANCED, VMPreset.RETRO, VMPreset.ADVANCED),
        (VMPreset.RETRO, VMPreset.RETRO, VMPreset.RETRO),
    ],
)
def test_larger_preset(a: VMPreset, b: VMPreset, expected: VMPreset) -> None:
    assert larger_preset(a, b) is expected


def test_fixed_names_and_ports() -> None:
    assert names.API_VERSION == "gamevm.dev/v1alpha1"
    assert (names.GAMEVM_KIND, names.GAMEVM_PLURAL) == ("GameVM", "gamevms")
    assert (names.EMULATORCONFIG_KIND, names.EMULATORCONFIG_PLURAL) == (
        "EmulatorConfig",
        "emulatorconfigs",
    )
    assert names.WOLF_PORT == 47999
    assert names.WOLF_HTTP_PORT == 47989
    assert names.SSH_PORT == 22
    prefixed = [
        names.FINALIZER,
        names.ANNOTATION_PAUSED,
        names.ANNOTATION_POWER_REQUEST,
        names.ANNOTATION_LAST_ACTIVITY,
        names.LABEL_GAMEVM,
    ]
    assert all(name.startswith("gamevm.dev/") for name in prefixed)
    assert names.access_secret_name("switch-mario-odyssey") == "switch-mario-odyssey-access"
