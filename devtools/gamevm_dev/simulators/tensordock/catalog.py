"""The simulated TensorDock inventory: GPU models, locations and hostnodes.

Prices follow reference/providers.md section 1b/5: GPUs priced per hour by v0 name,
plus per-unit prices $0.003/vCPU-h, $0.002/GB-RAM-h, $0.00005/GB-storage-h (the v2
docs' example), scaled by a per-location multiplier so that placements differ.
Ids are UUIDv5 of the city/hostnode label: stable across restarts and runs.
"""

import uuid
from dataclasses import dataclass, field

_NAMESPACE = uuid.UUID("6f1d1c2e-9a36-4c38-9d55-7a0d3e1b7c10")

PER_VCPU_HR = 0.003
PER_GB_RAM_HR = 0.002
PER_GB_STORAGE_HR = 0.00005

MAX_VCPUS_PER_GPU = 16
MAX_RAM_PER_GPU = 64


@dataclass(frozen=True)
class GpuModel:
    """One GPU model as the v2 API names it."""

    v0_name: str
    display_name: str
    price_per_hr: float
    vram_gb: int


GPU_MODELS: dict[str, GpuModel] = {
    m.v0_name: m
    for m in (
        GpuModel("rtxa4000-pcie-16gb", "NVIDIA RTX A4000 16GB", 0.13, 16),
        GpuModel("geforcertx3080-pcie-10gb", "NVIDIA GeForce RTX 3080 10GB", 0.15, 10),
        GpuModel("geforcertx3090-pcie-24gb", "NVIDIA GeForce RTX 3090 24GB", 0.20, 24),
        GpuModel("geforcertx4090-pcie-24gb", "NVIDIA GeForce RTX 4090 24GB", 0.35, 24),
        GpuModel("rtxa6000-pcie-48gb", "NVIDIA RTX A6000 48GB", 0.45, 48),
    )
}


@dataclass(frozen=True)
class Location:
    """A TensorDock location: city, state/province, ISO country code, tier."""

    city: str
    stateprovince: str
    country: str
    tier: int
    price_multiplier: float

    @property
    def id(self) -> str:
        """Stable location id."""
        return str(uuid.uuid5(_NAMESPACE, f"location:{self.city}:{self.country}"))


@dataclass(frozen=True)
class HostnodeSpec:
    """Total capacity of one hostnode; free capacity lives in the store."""

    label: str
    location: Location
    gpus: dict[str, int]
    vcpus: int
    ram_gb: int
    storage_gb: int
    dedicated_ip: bool = True
    uptime_percentage: float = 99.9
    ports: tuple[int, ...] = field(default=())

    @property
    def id(self) -> str:
        """Stable hostnode id."""
        return str(uuid.uuid5(_NAMESPACE, f"hostnode:{self.label}"))

    def price(self, unit_price: float) -> float:
        """A per-unit price at this hostnode's location."""
        return round(unit_price * self.location.price_multiplier, 6)


DALLAS = Location("Dallas", "Texas", "US", 3, 1.0)
CHICAGO = Location("Chicago", "Illinois", "US", 3, 1.0)
NEW_YORK = Location("New York", "New York", "US", 3, 1.05)
LOS_ANGELES = Location("Los Angeles", "California", "US", 3, 1.05)
FRANKFURT = Location("Frankfurt", "Hesse", "DE", 3, 1.1)
AMSTERDAM = Location("Amsterdam", "North Holland", "NL", 3, 1.1)
LONDON = Location("London", "England", "GB", 3, 1.15)
TOKYO = Location("Tokyo", "Tokyo", "JP", 3, 1.2)
SINGAPORE = Location("Singapore", "Singapore", "SG", 3, 1.2)
SYDNEY = Location("Sydney", "New South Wales", "AU", 2, 1.25)
SAO_PAULO = Location("Sao Paulo", "Sao Paulo", "BR", 1, 1.3)

LOCATIONS: tuple[Location, ...] = (
    DALLAS,
    CHICAGO,
    NEW_YORK,
    LOS_ANGELES,
    FRANKFURT,
    AMSTERDAM,
    LONDON,
    TOKYO,
    SINGAPORE,
    SYDNEY,
    SAO_PAULO,
)


def _ports(base: int) -> tuple[int, ...]:
    return tuple(range(base, base + 20))


HOSTNODES: tuple[HostnodeSpec, ...] = (
    HostnodeSpec(
        "dal-1",
        DALLAS,
        {"geforcertx3080-pcie-10gb": 4, "geforcertx4090-pcie-24gb": 2},
        64,
        256,
        4000,
        ports=_ports(20000),
    ),
    HostnodeSpec("dal-2", DALLAS, {}, 32, 128, 4000, dedicated_ip=False, ports=_ports(20100)),
    HostnodeSpec(
        "chi-1",
        CHICAGO,
        {"rtxa4000-pcie-16gb": 4, "geforcertx3090-pcie-24gb": 2},
        48,
        192,
        3000,
        ports=_ports(20200),
    ),
    HostnodeSpec(
        "nyc-1", NEW_YORK, {"geforcertx4090-pcie-24gb": 4}, 64, 256, 4000, ports=_ports(20300)
    ),
    HostnodeSpec("nyc-2", NEW_YORK, {}, 32, 128, 2000, ports=_ports(20400)),
    HostnodeSpec(
        "lax-1",
        LOS_ANGELES,
        {"geforcertx3080-pcie-10gb": 2, "rtxa6000-pcie-48gb": 2},
        48,
        192,
        3000,
        ports=_ports(20500),
    ),
    HostnodeSpec(
        "fra-1",
        FRANKFURT,
        {"geforcertx3090-pcie-24gb": 4, "geforcertx4090-pcie-24gb": 2},
        64,
        256,
        4000,
        ports=_ports(20600),
    ),
    HostnodeSpec("fra-2", FRANKFURT, {}, 32, 128, 2000, ports=_ports(20700)),
    HostnodeSpec("ams-1", AMSTERDAM, {"rtxa4000-pcie-16gb": 4}, 32, 128, 2000, ports=_ports(20800)),
    HostnodeSpec(
        "lon-1",
        LONDON,
        {"geforcertx3080-pcie-10gb": 2, "geforcertx4090-pcie-24gb": 1},
        32,
        128,
        2000,
        ports=_ports(20900),
    ),
    HostnodeSpec(
        "tyo-1",
        TOKYO,
        {"geforcertx4090-pcie-24gb": 2, "rtxa4000-pcie-16gb": 2},
        48,
        192,
        3000,
        ports=_ports(21000),
    ),
    HostnodeSpec(
        "sin-1", SINGAPORE, {"geforcertx3080-pcie-10gb": 2}, 32, 128, 2000, ports=_ports(21100)
    ),
    HostnodeSpec(
        "syd-1", SYDNEY, {"geforcertx3090-pcie-24gb": 2}, 32, 128, 2000, ports=_ports(21200)
    ),
    HostnodeSpec(
        "gru-1",
        SAO_PAULO,
        {"geforcertx3080-pcie-10gb": 2},
        16,
        64,
        1000,
        dedicated_ip=False,
        uptime_percentage=97.5,
        ports=_ports(21300),
    ),
)

HOSTNODES_BY_ID: dict[str, HostnodeSpec] = {h.id: h for h in HOSTNODES}
LOCATIONS_BY_ID: dict[str, Location] = {loc.id: loc for loc in LOCATIONS}

IMAGES: frozenset[str] = frozenset({"ubuntu2404", "ubuntu2204", "debian12", "windows10"})
