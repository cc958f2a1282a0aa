"""Coarse regions for TensorDock locations (the seed's "us-central"-style restrictions)."""

import pytest

from gamevm.providers.locations import macro_region


@pytest.mark.parametrize(
    ("city", "lat", "lon", "region"),
    [
        ("Dallas", 32.78, -96.80, "us-central"),
        ("Chicago", 41.88, -87.63, "us-east"),
        ("New York", 40.71, -74.01, "us-east"),
        ("Los Angeles", 34.05, -118.24, "us-west"),
        ("Sao Paulo", -23.55, -46.63, "sa-east"),
        ("London", 51.51, -0.13, "eu-west"),
        ("Frankfurt", 50.11, 8.68, "eu-central"),
        ("Amsterdam", 52.37, 4.90, "eu-west"),
        ("Helsinki", 60.17, 24.94, "eu-north"),
        ("Tokyo", 35.68, 139.65, "ap-northeast"),
        ("Seoul", 37.57, 126.98, "ap-northeast"),
        ("Hong Kong", 22.32, 114.17, "ap-east"),
        ("Singapore", 1.35, 103.82, "ap-southeast"),
        ("Mumbai", 19.08, 72.88, "ap-south"),
        ("Sydney", -33.87, 151.21, "ap-oceania"),
        ("Johannesburg", -26.20, 28.05, "af-south"),
        ("Dubai", 25.20, 55.27, "me-central"),
    ],
)
def test_macro_region(city: str, lat: float, lon: float, region: str) -> None:
    assert macro_region(lat, lon) == region, city
