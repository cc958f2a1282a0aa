"""Bundled coordinates for provider locations: no network geocoding at run time.

`data/cities.json` maps (city, stateprovince, country) to city-centre coordinates and
gives each country a centroid as the last resort. Matching is case-, accent- and
punctuation-insensitive; countries also match by ISO code and common aliases.
"""

import json
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Coordinates:
    """A point and how precisely it was found."""

    latitude: float
    longitude: float
    precision: str
    """'city' or 'country' (centroid fallback)."""


def normalize(text: str | None) -> str:
    """Lower-case ASCII letters and digits only: 'São Paulo' -> 'saopaulo'."""
    if not text:
        return ""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in ascii_text.lower() if ch.isalnum())


def load_package_json(name: str) -> Any:
    """A JSON file from operator/providers/data (package data)."""
    data = resources.files("gamevm.providers").joinpath("data", name).read_text("utf-8")
    return json.loads(data)


@dataclass(frozen=True)
class _City:
    state: str
    country: str
    latitude: float
    longitude: float


class CityTable:
    """Looks up coordinates for TensorDock-style city/stateprovince/country triples."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._country_key: dict[str, str] = {}
        self._country_point: dict[str, tuple[float, float]] = {}
        for name, entry in document["countries"].items():
            key = normalize(name)
            self._country_point[key] = (float(entry["latitude"]), float(entry["longitude"]))
            for alias in [name, *entry.get("aliases", [])]:
                self._country_key[normalize(alias)] = key
        self._cities: dict[str, list[_City]] = {}
        for row in document["cities"]:
            city = _City(
                state=normalize(row.get("stateprovince")),
                country=self._country_key.get(normalize(row["country"]), ""),
                latitude=float(row["latitude"]),
                longitude=float(row["longitude"]),
            )
            self._cities.setdefault(normalize(row["city"]), []).append(city)

    def lookup(
        self, city: str | None, stateprovince: str | None = None, country: str | None = None
    ) -> Coordinates | None:
        """Best match: city in the same country (state breaks ties), else the country."""
        country_key = self._country_key.get(normalize(country), "") if country else ""
        candidates = self._cities.get(normalize(city), [])
        if country_key:
            candidates = [c for c in candidates if c.country == country_key]
        if candidates:
            state = normalize(stateprovince)
            same_state = [c for c in candidates if state and c.state == state]
            best = (same_state or candidates)[0]
            return Coordinates(best.latitude, best.longitude, "city")
        if country_key in self._country_point:
            lat, lon = self._country_point[country_key]
            return Coordinates(lat, lon, "country")
        return None


@cache
def city_table() -> CityTable:
    """The bundled table, parsed once."""
    return CityTable(load_package_json("cities.json"))


def macro_region(latitude: float, longitude: float) -> str:  # noqa: PLR0911  # a lookup table
    """A coarse region name ("us-central", "eu-west", ...) for a marketplace location.

    TensorDock names locations by city only; the seed's EmulatorConfig example restricts
    TensorDock with names like "us-central" and "us-east", so hostnodes are grouped into
    such regions by their coordinates (boundaries are approximate and documented here).
    """
    lat, lon = latitude, longitude
    if -170 <= lon <= -50 and lat >= 15:  # North America
        if lon > -90:
            return "us-east"
        return "us-central" if lon > -105 else "us-west"
    if -95 <= lon <= -30 and lat < 15:
        return "sa-east"
    if -25 <= lon <= 45 and lat >= 35:  # Europe
        if lat > 55:
            return "eu-north"
        return "eu-west" if lon < 5 else "eu-central"
    if 25 <= lon <= 63 and 12 <= lat < 42:
        return "me-central"
    if -20 <= lon <= 55 and lat < 35:
        return "af-south" if lat < 0 else "af-north"
    if lat < -10 and lon >= 110:
        return "ap-oceania"
    if 60 <= lon < 90:
        return "ap-south"
    if lon >= 125 or (lat >= 33 and lon >= 120):
        return "ap-northeast"
    return "ap-east" if lat >= 20 else "ap-southeast"
