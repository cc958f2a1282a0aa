"""The MongoDB mirror: GameVMs and EmulatorConfigs in `vm_instances` and `emulator_configs`."""

from gamevm.mirror.mapping import (
    MappingError,
    config_document_from,
    terminated_vm_document_from,
    vm_document_from,
)
from gamevm.mirror.repository import Mirror
from gamevm.mirror.resync import ResyncReport, ResyncSnapshot, ResyncSource
from gamevm.mirror.stats import MirrorStats

__all__ = [
    "MappingError",
    "Mirror",
    "MirrorStats",
    "ResyncReport",
    "ResyncSnapshot",
    "ResyncSource",
    "config_document_from",
    "terminated_vm_document_from",
    "vm_document_from",
]
