"""Builds one adapter per CloudProvider from settings and the credentials Secret.

`build_providers(settings, credentials)` always returns all six providers. A provider
whose required Secret keys are missing is built as `UnconfiguredProvider`, whose every
call raises ProviderError(MissingCredentials, retryable=False) naming the Secret and the
missing keys (never values), so selection reports it as unavailable and the other
providers keep working. Key names: `gamevm.providers.credentials`.
"""

import asyncio
from collections.abc import Mapping

from gamevm.models.enums import CloudProvider
from gamevm.providers.base import (
    CreateSpec,
    Instance,
    Offer,
    OfferRequest,
    Provider,
    ProviderError,
)
from gamevm.providers.cloudypad.adapter import CloudyPadProvider
from gamevm.providers.credentials import (
    TENSORDOCK_TOKEN,
    credentials_for,
    missing_credentials_error,
    missing_keys,
)
from gamevm.providers.httpclient import RetryPolicy
from gamevm.providers.tensordock.adapter import TensorDockProvider
from gamevm.settings import Settings


class UnconfiguredProvider:
    """Stands in for a provider without credentials: every call explains what is missing."""

    def __init__(self, provider: CloudProvider, error: ProviderError) -> None:
        self._provider = provider
        self._error = error

    @property
    def name(self) -> CloudProvider:
        """Which CloudProvider this stands in for."""
        return self._provider

    def _raise(self) -> ProviderError:
        return ProviderError(self._error.reason, self._error.message, retryable=False)

    async def offers(self, request: OfferRequest) -> list[Offer]:
        """Raises MissingCredentials."""
        raise self._raise()

    async def find(self, name: str) -> Instance | None:
        """Raises MissingCredentials."""
        raise self._raise()

    async def create(self, spec: CreateSpec) -> Instance:
        """Raises MissingCredentials."""
        raise self._raise()

    async def observe(self, instance_id: str, *, address: bool = True) -> Instance | None:
        """Raises MissingCredentials."""
        raise self._raise()

    async def list_instances(self) -> list[Instance] | None:
        """Raises MissingCredentials."""
        raise self._raise()

    async def start(self, instance_id: str) -> None:
        """Raises MissingCredentials."""
        raise self._raise()

    async def stop(self, instance_id: str) -> None:
        """Raises MissingCredentials."""
        raise self._raise()

    async def delete(self, instance_id: str) -> None:
        """Raises MissingCredentials."""
        raise self._raise()

    async def aclose(self) -> None:
        """Nothing to release."""


def retry_policy(settings: Settings) -> RetryPolicy:
    """The HTTP retry policy from settings."""
    return RetryPolicy(
        retries=settings.http_retries,
        backoff_base=settings.http_backoff_base,
        backoff_max=settings.http_backoff_max,
    )


def build_provider(
    provider: CloudProvider,
    settings: Settings,
    credentials: Mapping[str, str],
    cloudypad_runs: asyncio.Semaphore | None = None,
) -> Provider:
    """One adapter (or an UnconfiguredProvider when its Secret keys are missing).

    `cloudypad_runs` bounds concurrent CloudyPad CLI runs; `build_providers` shares one
    among all CloudyPad providers.
    """
    missing = missing_keys(provider, credentials)
    if missing:
        error = missing_credentials_error(provider, settings.credentials_secret, missing)
        return UnconfiguredProvider(provider, error)
    own = credentials_for(provider, credentials)
    if provider is CloudProvider.TENSORDOCK:
        return TensorDockProvider(
            token=own[TENSORDOCK_TOKEN],
            api_url=settings.tensordock_api_url,
            timeout=settings.http_timeout,
            policy=retry_policy(settings),
            requests_per_minute=settings.tensordock_requests_per_minute,
            image=settings.tensordock_image,
            storage_gb=settings.tensordock_storage_gb,
        )
    return CloudyPadProvider(
        provider,
        cli=settings.cloudypad_cli,
        credentials=own,
        timeout=settings.cloudypad_timeout,
        power_timeout=settings.cloudypad_power_timeout,
        home=settings.cloudypad_home,
        extra_env=settings.cloudypad_env,
        runs=cloudypad_runs or asyncio.Semaphore(settings.cloudypad_max_concurrent_runs),
        eur_usd_rate=settings.cloudypad_eur_usd_rate,
    )


def build_providers(
    settings: Settings, credentials: Mapping[str, str]
) -> dict[CloudProvider, Provider]:
    """All six providers, keyed by CloudProvider."""
    cloudypad_runs = asyncio.Semaphore(settings.cloudypad_max_concurrent_runs)
    return {p: build_provider(p, settings, credentials, cloudypad_runs) for p in CloudProvider}


async def close_providers(providers: Mapping[CloudProvider, Provider]) -> None:
    """Close every adapter (HTTP sessions)."""
    for provider in providers.values():
        await provider.aclose()
