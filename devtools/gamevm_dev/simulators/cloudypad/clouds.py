"""Per-cloud knowledge of the CloudyPad simulator: flags, credentials, state, capacity errors.

Flags are those of reference/providers.md section 2 (`src/providers/*/cli.ts`). The
state's `provision.input`/`output` field names are camelCase like CloudyPad's state
files; the exact per-provider output keys (instanceName, instanceId, vmName,
machineId, instanceServerId) are the simulator's best guess (UNCONFIRMED beyond
`host` and GCP's `instanceName`).

Credentials (providers.md "Credentials"), checked for create/start/stop/restart/destroy:
- gcp: GOOGLE_APPLICATION_CREDENTIALS naming an existing file, or the ADC file
  $CLOUDSDK_CONFIG/application_default_credentials.json (default ~/.config/gcloud).
- aws: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or ~/.aws/credentials.
- azure: AZURE_CLIENT_ID + AZURE_SECRET + AZURE_TENANT, or ~/.azure/azureProfile.json (az login).
- paperspace: PAPERSPACE_API_KEY, or --api-key-file naming an existing file (create only).
- scaleway: SCW_ACCESS_KEY + SCW_SECRET_KEY, or ~/.config/scw/config.yaml.
"""

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROVIDERS = ("gcp", "aws", "azure", "paperspace", "scaleway")


@dataclass(frozen=True)
class Flag:
    """One provider-specific create flag and its state key."""

    option: str
    key: str
    required: bool = False


FLAGS: dict[str, tuple[Flag, ...]] = {
    "gcp": (
        Flag("--project-id", "projectId", required=True),
        Flag("--region", "region", required=True),
        Flag("--zone", "zone", required=True),
        Flag("--machine-type", "machineType", required=True),
        Flag("--gpu-type", "acceleratorType", required=True),
        Flag("--disk-type", "diskType"),
        Flag("--network-tier", "networkTier"),
        Flag("--nic-type", "nicType"),
    ),
    "aws": (
        Flag("--region", "region", required=True),
        Flag("--zone", "zone"),
        Flag("--instance-type", "instanceType", required=True),
        Flag("--image-id", "imageId"),
        Flag("--dedicated-vpc", "dedicatedVpc"),
        Flag("--root-disk-size", "rootDiskSizeGb"),
        Flag("--public-ip-type", "publicIpType"),
    ),
    "azure": (
        Flag("--subscription-id", "subscriptionId", required=True),
        Flag("--location", "location", required=True),
        Flag("--vm-size", "vmSize", required=True),
        Flag("--disk-type", "diskType"),
    ),
    "paperspace": (
        Flag("--api-key-file", "apiKeyFile"),
        Flag("--machine-type", "machineType", required=True),
        Flag("--region", "region", required=True),
        Flag("--ssh-key-path", "sshKeyPath"),
    ),
    "scaleway": (
        Flag("--project-id", "projectId", required=True),
        Flag("--region", "region", required=True),
        Flag("--zone", "zone", required=True),
        Flag("--instance-type", "instanceType", required=True),
        Flag("--image-id", "imageId"),
        Flag("--root-disk-size", "rootDiskSizeGb"),
    ),
}


def placement(provider: str, inputs: Mapping[str, Any]) -> list[str]:
    """The values a no-capacity fault may target (zone, region, location...)."""
    keys = ("zone", "region", "location")
    return [str(inputs[k]) for k in keys if inputs.get(k)]


def validate_placement(provider: str, inputs: Mapping[str, Any]) -> str | None:
    """A CLI-style error for inconsistent placement flags, else None."""
    zone, region = inputs.get("zone"), inputs.get("region")
    zone_outside = zone and region and not str(zone).startswith(str(region))
    if provider in ("gcp", "scaleway", "aws") and zone_outside:
        return f"Zone {zone} is not in region {region}"
    if provider == "paperspace" and region not in (
        None,
        "East Coast (NY2)",
        "West Coast (CA1)",
        "Europe (AMS1)",
    ):
        return (
            f"Invalid Paperspace region {region!r}: use 'East Coast (NY2)', "
            "'West Coast (CA1)' or 'Europe (AMS1)'"
        )
    return None


def capacity_error(provider: str, inputs: Mapping[str, Any]) -> str:
    """The cloud's own no-capacity message (GCP and AWS texts are the real error codes)."""
    zone = inputs.get("zone") or inputs.get("region") or inputs.get("location")
    if provider == "gcp":
        return (
            "ZONE_RESOURCE_POOL_EXHAUSTED: The zone 'projects/"
            f"{inputs.get('projectId')}/zones/{zone}' does not have enough resources available "
            "to fulfill the request. Try a different zone, or try again later."
        )
    if provider == "aws":
        return (
            "InsufficientInstanceCapacity: We currently do not have sufficient "
            f"{inputs.get('instanceType')} capacity in the Availability Zone you requested "
            f"({zone}). Our system will be working on provisioning additional capacity."
        )
    if provider == "azure":
        return (
            "AllocationFailed: Allocation failed. We do not have sufficient capacity for the "
            f"requested VM size {inputs.get('vmSize')} in region {zone}."
        )
    if provider == "scaleway":
        return (
            f"scaleway-sdk-go: out of stock: instance type {inputs.get('instanceType')} "
            f"is out of stock in zone {zone}"
        )
    return f"Out of capacity for machine type {inputs.get('machineType')} in region {zone}"


def _exists(path: str | None) -> bool:
    return bool(path) and Path(str(path)).expanduser().is_file()


def _has_credentials(
    provider: str, env: Mapping[str, str], home: Path, api_key_file: str | None
) -> bool:
    if provider == "gcp":
        config = Path(env.get("CLOUDSDK_CONFIG", str(home / ".config" / "gcloud")))
        return _exists(env.get("GOOGLE_APPLICATION_CREDENTIALS")) or _exists(
            str(config / "application_default_credentials.json")
        )
    if provider == "aws":
        keys = bool(env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"))
        return keys or bool(env.get("AWS_PROFILE")) or _exists(str(home / ".aws" / "credentials"))
    if provider == "azure":
        keys = all(env.get(k) for k in ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_TENANT"))
        return keys or _exists(str(home / ".azure" / "azureProfile.json"))
    if provider == "paperspace":
        return bool(env.get("PAPERSPACE_API_KEY")) or _exists(api_key_file)
    if provider == "scaleway":
        keys = bool(env.get("SCW_ACCESS_KEY") and env.get("SCW_SECRET_KEY"))
        return keys or _exists(str(home / ".config" / "scw" / "config.yaml"))
    return False


MISSING_CREDENTIALS: dict[str, str] = {
    "gcp": "Google Cloud credentials not found: run 'gcloud auth application-default login' "
    "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file",
    "aws": "AWS credentials not found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
    "or AWS_PROFILE, or configure ~/.aws/credentials",
    "azure": "Azure credentials not found: run 'az login' or set AZURE_CLIENT_ID, "
    "AZURE_SECRET and AZURE_TENANT",
    "paperspace": "Paperspace API key not found: set PAPERSPACE_API_KEY or pass --api-key-file",
    "scaleway": "Scaleway credentials not found: set SCW_ACCESS_KEY and SCW_SECRET_KEY "
    "or configure the scw CLI (~/.config/scw/config.yaml)",
}


def credentials_error(
    provider: str, env: Mapping[str, str], api_key_file: str | None = None
) -> str | None:
    """Why this cloud's credentials are missing, or None when they are present."""
    home = Path(env.get("HOME", str(Path.home())))
    if _has_credentials(provider, env, home, api_key_file):
        return None
    return MISSING_CREDENTIALS.get(provider, f"Unknown provider {provider}")


def provision_output(provider: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What provisioning writes to `provision.output` (host is always 127.0.0.1 here)."""
    out: dict[str, Any] = {"host": "127.0.0.1", "publicIPv4": "127.0.0.1"}
    suffix = secrets.token_hex(4)
    if provider == "gcp":
        out["instanceName"] = f"cloudypad-{name}"
    elif provider == "aws":
        out["instanceId"] = f"i-{secrets.token_hex(8)}"
    elif provider == "azure":
        out["vmName"] = f"cloudypad-{name}"
        out["resourceGroupName"] = f"cloudypad-{name}-rg"
    elif provider == "paperspace":
        out["machineId"] = f"ps{suffix}"
    elif provider == "scaleway":
        out["instanceServerId"] = f"{suffix}-{secrets.token_hex(2)}-{secrets.token_hex(2)}"
        out["instanceName"] = f"cloudypad-{name}"
    out["dataDiskId"] = f"disk-{suffix}"
    return out


def env_home(env: Mapping[str, str]) -> Path:
    """$CLOUDYPAD_HOME, default ~/.cloudypad."""
    if env.get("CLOUDYPAD_HOME"):
        return Path(env["CLOUDYPAD_HOME"])
    return Path(env.get("HOME", str(Path.home()))) / ".cloudypad"


def current_env() -> dict[str, str]:
    """A copy of the process environment."""
    return dict(os.environ)
