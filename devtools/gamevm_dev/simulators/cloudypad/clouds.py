"""Per-cloud knowledge of the CloudyPad simulator: options, prompts, credentials, state.

Options per cloud are those of the real CLI 0.45.1 (`src/providers/*/cli.ts`); an option
the real CLI would ask for when it is missing has a `prompt` (the question it asks), and
without a TTY the simulator dies there like the real one (`ExitPromptError`). Options of
kind `bool` take an optional value (`--spot`, `--spot no`); `switch` takes none. The
tests in tests/contract/test_cloudypad_cli_contract.py run against this simulator and the
real CLI alike.

The state's `provision.input`/`output` field names are camelCase like CloudyPad's state
files; the per-provider output keys beyond `host` are the simulator's best guess.

Credentials (what the SDKs under the real CLI read), checked for create/start/stop/destroy:
- gcp: GOOGLE_APPLICATION_CREDENTIALS naming an existing file, or the ADC file
  $CLOUDSDK_CONFIG/application_default_credentials.json (default ~/.config/gcloud).
- aws: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or ~/.aws/credentials.
- azure: AZURE_CLIENT_ID + AZURE_CLIENT_SECRET + AZURE_TENANT_ID, or ~/.azure (az login).
- paperspace: PAPERSPACE_API_KEY, or --api-key-file naming an existing file (create only).
- scaleway: ~/.config/scw/config.yaml (or $SCW_CONFIG_PATH); SCW_* variables alone fail
  with ENOENT, as in the real CLI.
"""

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROVIDERS = ("gcp", "aws", "azure", "paperspace", "scaleway", "dummy")
STOP_DELETES_SERVER = ("gcp", "aws", "azure", "scaleway")
"""Clouds whose --delete-instance-server-on-stop & co. default to true."""


@dataclass(frozen=True)
class Flag:
    """One create option: its state key, kind and the question asked when it is missing."""

    option: str
    key: str
    prompt: str | None = None
    kind: str = "value"
    """value: takes an argument; bool: optional argument (bare = true); switch: none."""


def _flags(*flags: Flag) -> tuple[Flag, ...]:
    return flags


_STREAMING = _flags(
    Flag("--streaming-server", "streamingServer", "Choose a streaming server:"),
    Flag("--sunshine-user", "sunshineUser"),
    Flag("--sunshine-password", "sunshinePassword"),
    Flag("--sunshine-image-tag", "sunshineImageTag"),
    Flag("--sunshine-image-registry", "sunshineImageRegistry"),
    Flag(
        "--autostop",
        "autostop",
        "Do you want to enable Auto Stop to shutdown the instance automatically when "
        "inactivity is detected? (Y/n)",
        "bool",
    ),
    Flag("--autostop-timeout", "autostopTimeout"),
    Flag("--use-locale", "useLocale"),
    Flag("--keyboard-layout", "keyboardLayout"),
    Flag("--keyboard-model", "keyboardModel"),
    Flag("--keyboard-variant", "keyboardVariant"),
    Flag("--keyboard-options", "keyboardOptions"),
)
_BITRATE = _flags(Flag("--sunshine-max-bitrate-kbps", "sunshineMaxBitrateKbps"))
_RATELIMIT = _flags(Flag("--ratelimit-max-mbps", "ratelimitMaxMbps"))
_SPOT = _flags(
    Flag(
        "--spot",
        "useSpot",
        "Do you want to use spot instances ? Spot instances are cheaper (usually 20% to 70% "
        "off) but may be restarted any time. (Y/n)",
        "bool",
    )
)
_COST = _flags(
    Flag(
        "--cost-alert",
        "costAlert",
        "Do you want to enable billing alert? Set a cost limit and get email alerts when "
        "spending reaches 50%, 80%, and 100% of the limit. (Y/n)",
        "bool",
    ),
    Flag("--cost-limit", "costLimit"),
    Flag("--cost-notification-email", "costNotificationEmail"),
)
_STOP = _flags(
    Flag("--data-disk-snapshot", "dataDiskSnapshot", kind="bool"),
    Flag("--base-image-snapshot", "baseImageSnapshot", kind="bool"),
    Flag("--base-image-keep-on-deletion", "baseImageKeepOnDeletion", kind="bool"),
    Flag("--delete-instance-server-on-stop", "deleteInstanceServerOnStop", kind="bool"),
)
_DISK = Flag("--disk-size", "diskSize", "Enter desired disk size (GB):")
_DATA_DISK = Flag("--data-disk-size", "dataDiskSizeGb")

COMMON_FLAGS = _flags(
    Flag("--name", "name", "Enter instance instanceName:"),
    Flag("--private-ssh-key", "privateSshKey"),
    Flag("--ssh-private-key", "sshPrivateKey"),
    Flag("--yes", "yes", kind="switch"),
    Flag("--overwrite-existing", "overwriteExisting", kind="switch"),
    Flag("--skip-pairing", "skipPairing", kind="switch"),
    Flag("--ansible-additional-args", "ansibleAdditionalArgs"),
    Flag("--ansible-args-override", "ansibleArgsOverride"),
    Flag("--retries", "retries"),
    Flag("--retry-delay", "retryDelay"),
    Flag("--force-pulumi-cancel", "forcePulumiCancel", kind="switch"),
)
FLAGS: dict[str, tuple[Flag, ...]] = {
    "gcp": (
        *_SPOT,
        _DISK,
        _DATA_DISK,
        *_COST,
        *_STREAMING,
        *_BITRATE,
        *_RATELIMIT,
        *_STOP,
        Flag("--machine-type", "machineType", "Choose a machine type:"),
        Flag("--region", "region", "Select region to use:"),
        Flag("--zone", "zone", "Select zone to use:"),
        Flag("--project-id", "projectId", "Select a project to use:"),
        Flag("--gpu-type", "acceleratorType", "Select GPU type (accelerator type) to use:"),
        Flag("--disk-type", "diskType", "Select disk type (affects performance & price):"),
        Flag(
            "--network-tier",
            "networkTier",
            "Select network tier (applies to outgoing internet traffic - affects latency & price):",
        ),
        Flag("--nic-type", "nicType", "Select NIC type (affects network performance):"),
    ),
    "aws": (
        Flag(
            "--dedicated-vpc",
            "dedicatedVpc",
            "Create a dedicated VPC for this instance? (required if your AWS account has no "
            "default VPC) (Y/n)",
            "switch",
        ),
        Flag("--region", "region", "Select an AWS region to deploy instance:"),
        Flag("--zone", "zone", "Select an availability zone:"),
        *_SPOT,
        Flag("--instance-type", "instanceType", "Choose an instance type:"),
        _DISK,
        Flag("--root-disk-size", "rootDiskSizeGb"),
        Flag(
            "--data-disk-size",
            "dataDiskSizeGb",
            "Data disk size in GB (OS will use another independent disk)",
        ),
        *_COST,
        *_STREAMING,
        *_BITRATE,
        *_RATELIMIT,
        *_STOP,
        Flag("--image-id", "imageId"),
    ),
    "azure": (
        Flag("--subscription-id", "subscriptionId", "Enter Azure subscription ID to use:"),
        *_SPOT,
        Flag("--location", "location", "Enter Azure location to use:"),
        Flag("--vm-size", "vmSize", "Choose a VM size (sorted by vCPU count):"),
        Flag("--disk-type", "diskType", "Enter desired disk type"),
        _DISK,
        _DATA_DISK,
        *_COST,
        *_STREAMING,
        *_BITRATE,
        *_RATELIMIT,
        *_STOP,
    ),
    "paperspace": (
        *_SPOT,
        Flag("--machine-type", "machineType", "Select machine type:"),
        Flag("--disk-size", "diskSize", "Select disk size (GB):"),
        Flag("--region", "region", "Select region for new machine:"),
        Flag("--ssh-key-path", "sshKeyPath", "Select SSH private key:"),
        Flag("--api-key-file", "apiKeyFile"),
        *_STREAMING,
        *_BITRATE,
    ),
    "scaleway": (
        Flag("--project-id", "projectId", "Select a project to use:"),
        Flag("--region", "region", "Select a region:"),
        Flag("--zone", "zone", "Select a zone:"),
        Flag("--instance-type", "instanceType", "Choose an instance type:"),
        Flag("--root-disk-size", "diskSizeGb", "Enter root disk size (GB):"),
        Flag("--data-disk-size", "dataDiskSizeGb", "Enter data disk size (GB):"),
        *_STREAMING,
        *_BITRATE,
        *_RATELIMIT,
        *_STOP,
        Flag("--image-id", "imageId"),
    ),
    "dummy": (
        *_STREAMING,
        *_RATELIMIT,
        Flag("--instance-type", "instanceType", "Choose an instance type:"),
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


def scaleway_config_path(env: Mapping[str, str], home: Path) -> Path:
    """Where the Scaleway SDK looks for its config file."""
    if env.get("SCW_CONFIG_PATH"):
        return Path(env["SCW_CONFIG_PATH"])
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "scw" / "config.yaml"
    return home / ".config" / "scw" / "config.yaml"


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
        names = ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID")
        return all(env.get(k) for k in names) or _exists(str(home / ".azure" / "azureProfile.json"))
    if provider == "paperspace":
        return bool(env.get("PAPERSPACE_API_KEY")) or _exists(api_key_file)
    if provider == "scaleway":
        return _exists(str(scaleway_config_path(env, home)))
    return provider == "dummy"


def missing_credentials(provider: str, env: Mapping[str, str]) -> list[str]:
    """The real CLI's error chain for missing credentials (headline first)."""
    home = Path(env.get("HOME", str(Path.home())))
    if provider == "scaleway":
        return [
            "Scaleway configuration is not valid. Did you configure your Scaleway "
            "credentials? See https://docs.cloudypad.gg/cloud-provider-setup/scaleway.html.",
            f"ENOENT: no such file or directory, open '{scaleway_config_path(env, home)}'",
        ]
    return [MISSING_CREDENTIALS.get(provider, f"Unknown provider {provider}")]


MISSING_CREDENTIALS: dict[str, str] = {
    "gcp": "Could not load the default credentials. Browse to "
    "https://cloud.google.com/docs/authentication/getting-started for more information.",
    "aws": "CredentialsProviderError: Could not load credentials from any providers",
    "azure": "CredentialUnavailableError: DefaultAzureCredential failed to retrieve a token "
    "from the included credentials (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID)",
    "paperspace": "No Paperspace API Key found. Restart with environment variable "
    "PAPERSPACE_API_KEY or enter API Key:",
}


def credentials_error(
    provider: str, env: Mapping[str, str], api_key_file: str | None = None
) -> list[str] | None:
    """Why this cloud's credentials are missing (error chain), or None when present."""
    home = Path(env.get("HOME", str(Path.home())))
    if _has_credentials(provider, env, home, api_key_file):
        return None
    return missing_credentials(provider, env)


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
    elif provider == "dummy":
        out["instanceId"] = f"dummy-id-{name}"
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
