"""Registry, credentials, HTTP helpers (token bucket, backoff, Retry-After), city table."""

import logging
import random
from email.utils import formatdate
from pathlib import Path

import pytest

from gamevm.models import PRESET_RESOURCES, CloudProvider, VMPreset
from gamevm.providers.base import ErrorReason, OfferRequest, ProviderError
from gamevm.providers.cloudypad.adapter import CloudyPadProvider
from gamevm.providers.cloudypad.environment import CliEnvironment
from gamevm.providers.credentials import CREDENTIAL_KEYS, TENSORDOCK_TOKEN, credentials_for
from gamevm.providers.httpclient import TokenBucket, full_jitter, parse_retry_after, trim
from gamevm.providers.locations import city_table
from gamevm.providers.registry import UnconfiguredProvider, build_providers, close_providers
from gamevm.providers.tensordock.adapter import TensorDockProvider
from gamevm.settings import Settings

ALL_CREDENTIALS = {
    TENSORDOCK_TOKEN: "td-secret-token",
    "GOOGLE_PROJECT": "p",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AZURE_CLIENT_ID": "c",
    "AZURE_CLIENT_SECRET": "azure-secret",
    "AZURE_TENANT_ID": "t",
    "AZURE_SUBSCRIPTION_ID": "s",
    "PAPERSPACE_API_KEY": "ps-secret",
    "SCW_ACCESS_KEY": "SCW",
    "SCW_SECRET_KEY": "scw-secret",
    "SCW_DEFAULT_PROJECT_ID": "proj",
}


async def test_build_all_six_providers() -> None:
    providers = build_providers(Settings(), ALL_CREDENTIALS)
    assert set(providers) == set(CloudProvider)
    assert isinstance(providers[CloudProvider.TENSORDOCK], TensorDockProvider)
    for provider in CloudProvider:
        assert providers[provider].name is provider
        if provider is not CloudProvider.TENSORDOCK:
            assert isinstance(providers[provider], CloudyPadProvider)
    await close_providers(providers)


async def test_missing_credentials_name_the_secret_key_and_never_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    partial = {k: v for k, v in ALL_CREDENTIALS.items() if k != "AWS_SECRET_ACCESS_KEY"}
    providers = build_providers(Settings(credentials_secret="my-creds"), partial)
    aws = providers[CloudProvider.CLOUDYPAD_AWS]
    assert isinstance(aws, UnconfiguredProvider)
    request = OfferRequest(preset=VMPreset.PREMIUM, resources=PRESET_RESOURCES[VMPreset.PREMIUM])
    with pytest.raises(ProviderError) as raised:
        await aws.offers(request)
    assert raised.value.reason is ErrorReason.MISSING_CREDENTIALS
    assert not raised.value.retryable
    assert "'my-creds'" in raised.value.message
    assert "AWS_SECRET_ACCESS_KEY" in raised.value.message
    assert "AKIA" not in raised.value.message
    with pytest.raises(ProviderError):
        await aws.delete("x")
    # The others are unaffected.
    assert isinstance(providers[CloudProvider.TENSORDOCK], TensorDockProvider)
    assert all(v not in caplog.text for v in ALL_CREDENTIALS.values() if len(v) > 4)
    await close_providers(providers)


def test_empty_token_counts_as_missing() -> None:
    providers = build_providers(Settings(), {TENSORDOCK_TOKEN: "  "})
    assert isinstance(providers[CloudProvider.TENSORDOCK], UnconfiguredProvider)


def test_each_cloud_gets_only_its_own_credentials() -> None:
    own = credentials_for(CloudProvider.CLOUDYPAD_GCP, ALL_CREDENTIALS)
    assert own == {"GOOGLE_PROJECT": "p"}
    assert set(credentials_for(CloudProvider.CLOUDYPAD_SCALEWAY, ALL_CREDENTIALS)) == {
        "SCW_ACCESS_KEY",
        "SCW_SECRET_KEY",
        "SCW_DEFAULT_PROJECT_ID",
    }
    assert set(CREDENTIAL_KEYS) == set(CloudProvider)


def test_cloudypad_subprocess_environment_is_minimal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GAMEVM_MONGODB_URI", "mongodb://user:pw@db")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-own-aws-secret")
    monkeypatch.setenv("CLOUDYPAD_HOME", "/from/environment")
    monkeypatch.setenv("CLOUDYPAD_IMAGE", "crafteo/cloudypad:0.45.1")
    environment = CliEnvironment(
        cloud="gcp",
        credentials={"GOOGLE_PROJECT": "p"},
        home=str(tmp_path / "cloudypad"),
        extra_env={"HTTPS_PROXY": "http://proxy:3128", "HOME": str(tmp_path / "user")},
    )
    environment.prepare()
    try:
        env = environment.env
        assert env["CLOUDYPAD_HOME"] == str(tmp_path / "cloudypad")
        assert env["GOOGLE_PROJECT"] == "p"
        assert env["HTTPS_PROXY"] == "http://proxy:3128"
        assert env["CLOUDYPAD_CONTAINER_NO_TTY"] == "1"
        assert env["CLOUDYPAD_IMAGE"] == "crafteo/cloudypad:0.45.1"  # CloudyPad's own settings
        assert env["HOME"] == str(environment.private_dir)  # a private HOME per adapter
        assert env["PULUMI_HOME"] == str(tmp_path / "user" / ".pulumi")  # plugins are kept
        assert "GAMEVM_MONGODB_URI" not in env
        assert "AWS_SECRET_ACCESS_KEY" not in env
    finally:
        environment.remove()


def test_full_jitter_bounds() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        for _ in range(50):
            delay = full_jitter(attempt, 0.5, 4.0, rng)
            assert 0 <= delay <= min(4.0, 0.5 * 2**attempt)


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 10, usegmt=True), now=now) == pytest.approx(10)
    assert parse_retry_after(formatdate(now - 10, usegmt=True), now=now) == 0.0


async def test_token_bucket_never_exceeds_rate_per_minute() -> None:
    clock = [0.0]
    bucket = TokenBucket(100, clock=lambda: clock[0])
    assert bucket.burst == 2
    granted = 0
    # Simulate 60 s in 10 ms steps, taking a token whenever one is free.
    for _ in range(6000):
        while bucket.delay_for_next() == 0:
            bucket._tokens -= 1
            granted += 1
        clock[0] += 0.01
    assert granted <= 100
    assert granted >= 95


def test_trim() -> None:
    assert trim("a\n  b") == "a b"
    assert len(trim("x" * 1000)) == 300


@pytest.mark.parametrize(
    ("city", "state", "country", "expected"),
    [
        ("Dallas", "Texas", "US", (32.78, -96.80)),
        ("dallas", "TX", "United States of America", (32.78, -96.80)),
        ("São Paulo", "", "BR", (-23.55, -46.63)),
        ("Sao Paulo", "Sao Paulo", "Brazil", (-23.55, -46.63)),
        ("Frankfurt", "Hesse", "DE", (50.11, 8.68)),
        ("Tokyo", "", "JP", (35.68, 139.69)),
        ("Amsterdam", "North Holland", "NL", (52.37, 4.90)),
        ("London", "England", "GB", (51.51, -0.13)),
        ("Sydney", "New South Wales", "AU", (-33.87, 151.21)),
        ("Singapore", "Singapore", "SG", (1.35, 103.82)),
        ("Chicago", "Illinois", "US", (41.88, -87.63)),
        ("New York", "New York", "US", (40.71, -74.01)),
        ("Los Angeles", "California", "US", (34.05, -118.24)),
    ],
)
def test_city_table(city: str, state: str, country: str, expected: tuple[float, float]) -> None:
    found = city_table().lookup(city, state, country)
    assert found is not None
    assert (found.latitude, found.longitude) == pytest.approx(expected)
    assert found.precision == "city"


def test_city_table_country_fallback_and_unknown() -> None:
    fallback = city_table().lookup("Nowhereville", "", "Japan")
    assert fallback is not None
    assert fallback.precision == "country"
    assert city_table().lookup("Nowhereville", "", "Atlantis") is None
    # Same city name in another country does not match.
    assert city_table().lookup("London", "", "CA") is not None
    assert city_table().lookup("London", "", "CA").precision == "country"  # type: ignore[union-attr]
