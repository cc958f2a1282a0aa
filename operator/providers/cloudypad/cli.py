"""CloudyPad CLI arguments and output parsing. Pure: no I/O.

Commands (reference/providers.md section 2): `create <cloud> --name N --yes
--overwrite-existing --skip-pairing --streaming-server wolf --autostop false <cloud flags>`,
`get <name>` (JSON: the state plus `status{serverStatus, provisioned, configured, ready}`,
IP at `provision.output.host`), `start|stop <name> --wait --timeout S`,
`destroy <name> --yes`.
"""

import json
import re
from collections.abc import Mapping
from typing import Any

from gamevm.models.enums import VMPreset
from gamevm.providers.base import ErrorReason, Instance, InstanceState, Offer, ProviderError
from gamevm.providers.cloudypad.catalog import Cloud
from gamevm.providers.httpclient import trim

SERVER_STATUS: Mapping[str, InstanceState] = {
    "running": InstanceState.RUNNING,
    "starting": InstanceState.STARTING,
    "restarting": InstanceState.STARTING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPED,
    "unknown": InstanceState.UNKNOWN,
}

# Cloud capacity and quota errors as the SDKs word them: fall back to another placement.
_CAPACITY = re.compile(
    r"ZONE_RESOURCE_POOL_EXHAUSTED|InsufficientInstanceCapacity|InsufficientCapacity|"
    r"SkuNotAvailable|AllocationFailed|ZonalAllocationFailed|OverconstrainedAllocation|"
    r"QUOTA_EXCEEDED|QuotaExceeded|VcpuLimitExceeded|out of stock|out_of_stock|"
    r"no (?:more )?capacity|not enough capacity|insufficient capacity|resource(?:s)? exhausted",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"unauthori[sz]ed|unauthenticated|authentication|invalid (?:api )?key|invalid token|"
    r"AuthFailure|AccessDenied|permission denied|PERMISSION_DENIED|credentials|api key|"
    r"InvalidClientTokenId|\b401\b|\b403\b",
    re.IGNORECASE,
)
_NOT_FOUND = re.compile(
    r"not found|does not exist|doesn't exist|no such instance|unknown instance|ENOENT",
    re.IGNORECASE,
)
_ALREADY = re.compile(r"already (?:running|started|stopped|destroyed|deleted|gone)", re.IGNORECASE)
_USAGE = re.compile(
    r"unknown option|unrecognized arguments|required option|missing required|usage:|"
    r"\binvalid\b|is not in region|confirmation required",
    re.IGNORECASE,
)


def create_args(
    cloud: Cloud, name: str, preset: VMPreset, offer: Offer, credentials: Mapping[str, str]
) -> list[str]:
    """Arguments of `create` for one offer (CloudyPad's own auto-stop off)."""
    machine = cloud.machines[preset]
    args = [
        "create",
        cloud.cli_provider,
        "--name",
        name,
        "--yes",
        "--overwrite-existing",
        "--skip-pairing",
        "--streaming-server",
        "wolf",
        "--autostop",
        "false",
    ]
    for flag, key in cloud.credential_flags.items():
        if credentials.get(key):
            args += [flag, credentials[key]]
    args += [cloud.region_flag, offer.details.get("cli_region", offer.region)]
    zone = offer.details.get("zone")
    if cloud.zone_flag and zone:
        args += [cloud.zone_flag, zone]
    args += [cloud.machine_flag, machine.machine_type]
    if cloud.gpu_flag and machine.gpu_type:
        args += [cloud.gpu_flag, machine.gpu_type]
    args += list(cloud.extra_create_args)
    return args


def power_args(action: str, name: str, timeout: int) -> list[str]:
    """`start|stop <name> --wait --timeout S`."""
    return [action, name, "--wait", "--timeout", str(timeout)]


def parse_json_output(stdout: str, what: str) -> Any:
    """The JSON document the CLI printed (log lines before or after it are skipped)."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            return json.loads(text[start : end + 1])
        except ValueError:
            pass
    raise ProviderError(
        ErrorReason.BAD_RESPONSE,
        f"CloudyPad {what}: output is not JSON: {trim(text, 120)!r}",
        retryable=True,
    )


def _section(obj: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    current: Any = obj
    for key in path:
        current = current.get(key) if isinstance(current, Mapping) else None
    return current if isinstance(current, Mapping) else {}


def parse_ports(raw: Any) -> dict[int, int]:
    """`provision.output.portForwards` {"47989": port} -> internal: external."""
    ports: dict[int, int] = {}
    if isinstance(raw, Mapping):
        for internal, external in raw.items():
            try:
                ports[int(internal)] = int(external)
            except (TypeError, ValueError):
                continue
    return ports


def parse_get(document: Any, name: str) -> Instance:
    """`get <name>` JSON -> Instance (instance_id is the instance name)."""
    if not isinstance(document, Mapping):
        raise ProviderError(
            ErrorReason.BAD_RESPONSE, f"CloudyPad get {name}: not a JSON object", retryable=True
        )
    state = _section(document, "state") or document
    status = _section(document, "status")
    provision_input = _section(state, "provision", "input")
    output = _section(state, "provision", "output")
    server_status = str(status.get("serverStatus", "unknown")).lower()
    provisioned = bool(status.get("provisioned", bool(output)))
    instance_state = SERVER_STATUS.get(server_status, InstanceState.UNKNOWN)
    if not provisioned and instance_state is InstanceState.UNKNOWN:
        instance_state = InstanceState.PENDING
    host = output.get("host")
    region = provision_input.get("zone") or provision_input.get("region")
    region = region or provision_input.get("location")
    metadata = {
        "serverStatus": server_status,
        "provisioned": str(provisioned).lower(),
        "ready": str(bool(status.get("ready", False))).lower(),
    }
    provider = _section(state, "provision").get("provider")
    if provider:
        metadata["cloud"] = str(provider)
    machine = provision_input.get("machineType") or provision_input.get("instanceType")
    machine = machine or provision_input.get("vmSize")
    if machine:
        metadata["machine_type"] = str(machine)
    return Instance(
        instance_id=name,
        name=str(state.get("name") or document.get("name") or name),
        state=instance_state,
        ip_address=str(host) if host else None,
        ports=parse_ports(output.get("portForwards")),
        region=str(region) if region else None,
        configured=bool(status.get("configured", False)),
        metadata=metadata,
    )


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """Replace every credential value (longer than 3 chars) with ***."""
    for value in secrets.values():
        if len(value) > 3:
            text = text.replace(value, "***")
    return text


def is_not_found(message: str) -> bool:
    """The CLI said the instance does not exist (not: a credentials file is missing)."""
    return bool(_NOT_FOUND.search(message)) and not _AUTH.search(message)


def is_provisioned(instance: Instance) -> bool:
    """Whether provisioning finished (a failed create leaves inputs-only state behind)."""
    return instance.metadata.get("provisioned") == "true"


def is_already(message: str) -> bool:
    """The CLI said the instance is already in the wanted state."""
    return bool(_ALREADY.search(message))


def cli_error(what: str, exit_code: int | None, message: str) -> ProviderError:
    """Map a failed CLI run to a ProviderError (message already trimmed and redacted)."""
    text = f"CloudyPad {what}: exit {exit_code}: {message or '(no output)'}"
    if _CAPACITY.search(message):
        return ProviderError(ErrorReason.NO_CAPACITY, text, retryable=False)
    if _AUTH.search(message):
        return ProviderError(ErrorReason.UNAUTHORIZED, text, retryable=False)
    if _USAGE.search(message):
        return ProviderError(ErrorReason.INVALID_REQUEST, text, retryable=False)
    if _NOT_FOUND.search(message):
        return ProviderError(ErrorReason.NOT_FOUND, text, retryable=False)
    # Pulumi, Ansible and network hiccups: let the reconcile retry with backoff.
    return ProviderError(ErrorReason.CLI_FAILED, text, retryable=True)


def last_lines(text: str, count: int = 5) -> str:
    """The end of the CLI's stderr: errors come last."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:])
