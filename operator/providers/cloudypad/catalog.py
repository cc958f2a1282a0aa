"""CloudyPad placements per cloud, from package data `data/cloudypad.json`.

The table (documented in the JSON itself) gives, per cloud: the CLI flags for region,
zone, machine type and GPU type, the options the CLI would otherwise prompt for, whether
its stop deletes the server by default; the regions with coordinates; the machine type
and on-demand hourly price (with its currency) for each GPU preset. `retro` is absent on
purpose: CloudyPad's Wolf role needs an NVIDIA GPU.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from gamevm.models.enums import CloudProvider, VMPreset
from gamevm.providers.locations import load_package_json

CLOUD_OF_PROVIDER: Mapping[CloudProvider, str] = {
    CloudProvider.CLOUDYPAD_GCP: "gcp",
    CloudProvider.CLOUDYPAD_AWS: "aws",
    CloudProvider.CLOUDYPAD_AZURE: "azure",
    CloudProvider.CLOUDYPAD_PAPERSPACE: "paperspace",
    CloudProvider.CLOUDYPAD_SCALEWAY: "scaleway",
}


@dataclass(frozen=True)
class Machine:
    """What one preset runs on in one cloud."""

    machine_type: str
    gpu_type: str | None
    gpu_model: str
    vcpu: int
    ram_gb: int
    price_per_hour: float
    currency: str
    """ISO currency of `price_per_hour` (Scaleway bills in EUR)."""


@dataclass(frozen=True)
class Region:
    """One region (and the GPU zone used in it)."""

    region: str
    zone: str | None
    cli_value: str
    label: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Cloud:
    """One cloud's CLI flags, regions and machines."""

    name: str
    cli_provider: str
    region_flag: str | None
    """None for CloudyPad's offline `dummy` provider, which has no regions."""
    zone_flag: str | None
    machine_flag: str
    gpu_flag: str | None
    credential_flags: Mapping[str, str]
    """CLI flag -> credential key whose (non-secret) value it takes, e.g. --project-id."""
    extra_create_args: tuple[str, ...]
    """Options CloudyPad would otherwise prompt for (disk, spot, network...)."""
    stop_deletes_server: bool
    """Has --delete-instance-server-on-stop & co. (default true): the adapter passes no."""
    ssh_key_flag: str | None
    """Flag naming a private key file the cloud needs (Paperspace's --ssh-key-path)."""
    regions: tuple[Region, ...]
    machines: Mapping[VMPreset, Machine]


def _cloud(name: str, raw: Mapping[str, Any]) -> Cloud:
    machines = {
        VMPreset(preset): Machine(
            machine_type=str(m["machine_type"]),
            gpu_type=m.get("gpu_type"),
            gpu_model=str(m["gpu_model"]),
            vcpu=int(m["vcpu"]),
            ram_gb=int(m["ram_gb"]),
            price_per_hour=float(m["price_per_hour"]),
            currency=str(m.get("currency", "USD")),
        )
        for preset, m in raw["presets"].items()
    }
    regions = tuple(
        Region(
            region=str(r["region"]),
            zone=r.get("zone"),
            cli_value=str(r.get("cli_value") or r["region"]),
            label=str(r["label"]),
            latitude=float(r["latitude"]),
            longitude=float(r["longitude"]),
        )
        for r in raw["regions"]
    )
    return Cloud(
        name=name,
        cli_provider=str(raw["cli_provider"]),
        region_flag=raw.get("region_flag"),
        zone_flag=raw.get("zone_flag"),
        machine_flag=str(raw["machine_flag"]),
        gpu_flag=raw.get("gpu_flag"),
        credential_flags=dict(raw.get("credential_flags", {})),
        extra_create_args=tuple(raw.get("extra_create_args", [])),
        stop_deletes_server=bool(raw.get("stop_deletes_server", False)),
        ssh_key_flag=raw.get("ssh_key_flag"),
        regions=regions,
        machines=machines,
    )


@cache
def cloudypad_catalog() -> Mapping[str, Cloud]:
    """The bundled table by cloud name ('gcp', 'aws', ...), parsed once."""
    document = load_package_json("cloudypad.json")
    return {name: _cloud(name, raw) for name, raw in document["clouds"].items()}
