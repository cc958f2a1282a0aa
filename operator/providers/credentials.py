"""Keys of the provider credentials Secret (`settings.credentials_secret`).

The handler layer reads the Secret and passes its decoded `data` to `build_providers`.
TensorDock's token is sent only as a Bearer header. CloudyPad keys are named exactly like
the environment variables the CLI (and the cloud SDKs under it) read, and are passed
only in the environment of the CLI subprocess of their own cloud, never on its command
line (except the non-secret project/subscription ids CloudyPad takes as flags), never
logged.

Required keys (optional ones in parentheses). For CloudyPad, the variables and files the
cloud SDKs under the CLI really read:
- tensordock: `tensordock-token`
- cloudypad_gcp: `GOOGLE_PROJECT` (`GOOGLE_CREDENTIALS`: service-account JSON, written to a
  0600 file in a private folder and passed as `GOOGLE_APPLICATION_CREDENTIALS`, the only
  name the Google SDKs read; or `GOOGLE_APPLICATION_CREDENTIALS`: path of a mounted key
  file; `GOOGLE_REGION`, `GOOGLE_ZONE`, `CLOUDSDK_CORE_PROJECT`)
- cloudypad_aws: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (`AWS_SESSION_TOKEN`,
  `AWS_PROFILE`, `AWS_REGION`)
- cloudypad_azure: `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`,
  `AZURE_SUBSCRIPTION_ID` (DefaultAzureCredential's names; Pulumi's `ARM_*` copies are
  added)
- cloudypad_paperspace: `PAPERSPACE_API_KEY`
- cloudypad_scaleway: `SCW_ACCESS_KEY`, `SCW_SECRET_KEY`, `SCW_DEFAULT_PROJECT_ID`
  (`SCW_DEFAULT_ORGANIZATION_ID`, `SCW_DEFAULT_ZONE`, `SCW_DEFAULT_REGION`): written to
  `~/.config/scw/config.yaml` of a private HOME, which CloudyPad requires (the SCW_*
  variables alone fail)
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gamevm.models.enums import CloudProvider
from gamevm.providers.base import ErrorReason, ProviderError

TENSORDOCK_TOKEN: Final = "tensordock-token"  # noqa: S105 - a key name, not a secret


@dataclass(frozen=True)
class CredentialKeys:
    """Secret keys one provider reads."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        """Required and optional keys."""
        return self.required + self.optional


CREDENTIAL_KEYS: Mapping[CloudProvider, CredentialKeys] = {
    CloudProvider.TENSORDOCK: CredentialKeys(required=(TENSORDOCK_TOKEN,)),
    CloudProvider.CLOUDYPAD_GCP: CredentialKeys(
        required=("GOOGLE_PROJECT",),
        optional=(
            "GOOGLE_CREDENTIALS",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_REGION",
            "GOOGLE_ZONE",
            "CLOUDSDK_CORE_PROJECT",
        ),
    ),
    CloudProvider.CLOUDYPAD_AWS: CredentialKeys(
        required=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        optional=("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"),
    ),
    CloudProvider.CLOUDYPAD_AZURE: CredentialKeys(
        required=(
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_TENANT_ID",
            "AZURE_SUBSCRIPTION_ID",
        ),
    ),
    CloudProvider.CLOUDYPAD_PAPERSPACE: CredentialKeys(required=("PAPERSPACE_API_KEY",)),
    CloudProvider.CLOUDYPAD_SCALEWAY: CredentialKeys(
        required=("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID"),
        optional=("SCW_DEFAULT_ORGANIZATION_ID", "SCW_DEFAULT_ZONE", "SCW_DEFAULT_REGION"),
    ),
}


def missing_keys(provider: CloudProvider, credentials: Mapping[str, str]) -> list[str]:
    """Required keys that are absent or empty."""
    return [k for k in CREDENTIAL_KEYS[provider].required if not credentials.get(k, "").strip()]


def missing_credentials_error(
    provider: CloudProvider, secret_name: str, missing: list[str]
) -> ProviderError:
    """The error a provider without credentials raises (names keys, never values)."""
    keys = ", ".join(missing)
    return ProviderError(
        ErrorReason.MISSING_CREDENTIALS,
        f"{provider}: Secret {secret_name!r} lacks key(s) {keys}",
        retryable=False,
    )


def credentials_for(provider: CloudProvider, credentials: Mapping[str, str]) -> dict[str, str]:
    """Only this provider's keys (others never reach its subprocess)."""
    return {k: credentials[k] for k in CREDENTIAL_KEYS[provider].all if credentials.get(k)}
