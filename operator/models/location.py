"""GPS coordinates, validated as the seed's `validate_coordinates` does."""

from typing import Annotated

from pydantic import Field

from gamevm.models.base import SpecModel

Latitude = Annotated[float, Field(ge=-90, le=90, description="Latitude in degrees, -90..90.")]
Longitude = Annotated[float, Field(ge=-180, le=180, description="Longitude in degrees, -180..180.")]


class GeoLocation(SpecModel):
    """GPS coordinates as `{"latitude": float, "longitude": float}`."""

    latitude: Latitude
    longitude: Longitude

    def as_tuple(self) -> tuple[float, float]:
        """(latitude, longitude), the order geopy expects."""
        return (self.latitude, self.longitude)
