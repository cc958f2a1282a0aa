"""The seed's preset resource table and the console -> default preset mapping."""

from dataclasses import dataclass

from gamevm.models.enums import ConsoleType, GpuTier, VMPreset


@dataclass(frozen=True)
class PresetResources:
    """Hardware one preset provides."""

    vcpu: int
    ram_gb: int
    gpu: GpuTier


PRESET_RESOURCES: dict[VMPreset, PresetResources] = {
    VMPreset.RETRO: PresetResources(vcpu=2, ram_gb=4, gpu=GpuTier.NONE),
    VMPreset.ADVANCED: PresetResources(vcpu=4, ram_gb=8, gpu=GpuTier.BASIC),
    VMPreset.PREMIUM: PresetResources(vcpu=8, ram_gb=16, gpu=GpuTier.HIGH_END),
}

CONSOLE_DEFAULT_PRESET: dict[ConsoleType, VMPreset] = {
    ConsoleType.NES: VMPreset.RETRO,
    ConsoleType.SNES: VMPreset.RETRO,
    ConsoleType.GB: VMPreset.RETRO,
    ConsoleType.GBC: VMPreset.RETRO,
    ConsoleType.GBA: VMPreset.RETRO,
    ConsoleType.NDS: VMPreset.ADVANCED,
    ConsoleType.N3DS: VMPreset.ADVANCED,
    ConsoleType.GAMECUBE: VMPreset.PREMIUM,
    ConsoleType.WII: VMPreset.PREMIUM,
    ConsoleType.SWITCH: VMPreset.PREMIUM,
}

_PRESET_ORDER = (VMPreset.RETRO, VMPreset.ADVANCED, VMPreset.PREMIUM)
_GPU_ORDER = (GpuTier.NONE, GpuTier.BASIC, GpuTier.HIGH_END)


def preset_rank(preset: VMPreset) -> int:
    """Position of a preset from smallest (0) to largest."""
    return _PRESET_ORDER.index(preset)


def gpu_rank(tier: GpuTier) -> int:
    """Position of a GPU tier from none (0) to high-end."""
    return _GPU_ORDER.index(tier)


def larger_preset(a: VMPreset, b: VMPreset) -> VMPreset:
    """The bigger of two presets."""
    return a if preset_rank(a) >= preset_rank(b) else b
