"""CloudyPad CLI 0.45.1: arguments, output parsing and error classification. Pure: no I/O.

Commands: `create <cloud> --name N --yes --overwrite-existing --skip-pairing
--streaming-server wolf --autostop false <cloud flags>`, `get <name>` (JSON: the state
`{version, name, provision{provider, input, output}, configuration, ...}` plus
`status{serverStatus, provisioned, configured, ready}`, IP at `provision.output.host`),
`start|stop <name> --wait --timeout S`, `destroy <name> --yes`.

What running the real CLI without a TTY showed (and what this module relies on):
- errors are logged on **stdout** by tslog, with ANSI colours and stack traces
  (` Error  Failed to get details of instance x`, `Caused by (1): Error: Instance named
  'x' does not exist.`); stderr only says `Oops, something went wrong`. Option-parsing
  errors come from commander on stderr (`error: unknown option '--x'`). So errors are read
  from both streams with ANSI codes stripped.
- a question it would need to ask (a missing option, a name that is not kebab-case)
  ends in `ExitPromptError` / `Failed to prompt input`: never retry that.
- `get` output holds the instance's SSH private key (`ssh.privateKeyContentBase64`): only
  the fields `parse_get` picks ever leave this module; the raw text never goes in a
  message.
"""

import json
import re
from collections.abc import Callable, Iterable, Mapping
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

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
# Lines that carry an error's meaning in tslog / commander / inquirer output.
_ERROR_LINE = re.compile(
    r"^\s*(?:"
    r"Error\s{1,2}(?P<headline>\S.*)"  # tslog's " Error  <message>" headline
    r"|Caused by(?: \(\d+\))?:\s*(?P<cause>\S.*)"
    r"|error: (?P<commander>.+)"  # commander (option parsing), on stderr
    r"|(?P<prompt>\? .+)"  # an inquirer question it could not ask
    r"|(?P<plain>(?:[A-Za-z]+Error|Error): .+)"
    r"|err\?: (?P<command>.+)"  # a failed command run by CloudyPad (execa), e.g. pulumi
    r")$"
)
_NOISE = re.compile(r"^(?:Error|[A-Za-z]+Error):\s*")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.DOTALL
)
_KEY_FIELD = re.compile(r'("?privateKeyContentBase64"?\s*[:=]\s*"?)[A-Za-z0-9+/=]{16,}')

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
    r"InvalidClientTokenId|invalid access key|invalid secret key|\b401\b|\b403\b",
    re.IGNORECASE,
)
_PROMPT = re.compile(r"ExitPromptError|Failed to prompt input|force closed the prompt")
_NO_PULUMI = re.compile(r"ENOENT:? pulumi|spawn pulumi ENOENT")
_NETWORK = re.compile(
    r"ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|fetch failed|socket hang up|"
    r"network error",
    re.IGNORECASE,
)
_USAGE = re.compile(
    r"unknown option|unknown command|too many arguments|missing required argument|"
    r"option '.+' argument missing|is not in region|Invalid .+ region",
    re.IGNORECASE,
)
_MISSING = re.compile(r"Instance named '(?P<name>[^']+)' does not exist")
_ALREADY = re.compile(r"already (?:running|started|stopped|destroyed|deleted|gone)", re.IGNORECASE)

NO_INNER_RETRY = ("--retries", "0")
"""The reconcile is the one retry loop (backoff, visible in status): CloudyPad's own retry
(once, after 10 s) would run every failing Pulumi action twice inside one run slot."""

STOP_KEEPS_SERVER = (
    "--delete-instance-server-on-stop",
    "no",
    "--data-disk-snapshot",
    "no",
    "--base-image-snapshot",
    "no",
)
"""Stop must only power off: by default stop deletes the server and snapshots the disks."""


def create_args(
    cloud: Cloud,
    name: str,
    preset: VMPreset,
    offer: Offer,
    flag_values: Mapping[str, str],
    ssh_key_path: str | None = None,
) -> list[str]:
    """Arguments of `create` for one offer: every option the cloud would otherwise ask for.

    `flag_values`: the (non-secret) credential values some flags take, e.g. the project
    id; `ssh_key_path`: the private key file for clouds whose `ssh_key_flag` needs one.
    """
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
        *NO_INNER_RETRY,
    ]
    for flag, key in cloud.credential_flags.items():
        if flag_values.get(key):
            args += [flag, flag_values[key]]
    if cloud.region_flag:
        args += [cloud.region_flag, offer.details.get("cli_region", offer.region)]
    zone = offer.details.get("zone")
    if cloud.zone_flag and zone:
        args += [cloud.zone_flag, zone]
    args += [cloud.machine_flag, machine.machine_type]
    if cloud.gpu_flag and machine.gpu_type:
        args += [cloud.gpu_flag, machine.gpu_type]
    if cloud.ssh_key_flag and ssh_key_path:
        args += [cloud.ssh_key_flag, ssh_key_path]
    if cloud.stop_deletes_server:
        args += list(STOP_KEEPS_SERVER)
    args += list(cloud.extra_create_args)
    return args


def power_args(action: str, name: str, timeout: int) -> list[str]:
    """`start|stop <name> --wait --timeout S --retries 0`."""
    return [action, name, "--wait", "--timeout", str(timeout), *NO_INNER_RETRY]


def destroy_args(name: str) -> list[str]:
    """`destroy <name> --yes --retries 0`."""
    return ["destroy", name, "--yes", *NO_INNER_RETRY]


def clean(text: str) -> str:
    """Output without ANSI colour and cursor codes."""
    return _ANSI.sub("", text)


def parse_json_output(stdout: str, what: str) -> Any:
    """The JSON document the CLI printed (log lines before or after it are skipped).

    The error never quotes the output: it holds the instance's SSH private key.
    """
    text = clean(stdout).strip()
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
        f"CloudyPad {what}: output is not JSON ({len(text)} characters)",
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


def _instance_state(server_status: str, provisioned: bool) -> InstanceState:
    state = SERVER_STATUS.get(server_status, InstanceState.UNKNOWN)
    if state is not InstanceState.UNKNOWN:
        return state
    # Provisioned but no server status: the server was deleted by a stop (CloudyPad's
    # default on GCP, AWS, Azure, Scaleway) or cannot be seen; `start` re-creates or
    # starts it either way, so it is stopped, never lost.
    return InstanceState.STOPPED if provisioned else InstanceState.PENDING


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
        state=_instance_state(server_status, provisioned),
        ip_address=str(host) if host else None,
        ports=parse_ports(output.get("portForwards")),
        region=str(region) if region else None,
        configured=bool(status.get("configured", False)),
        metadata=metadata,
    )


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every credential value (longer than 3 chars) and any private key with ***."""
    for value in secrets:
        if len(value) > 3:
            text = text.replace(value, "***")
    text = _PRIVATE_KEY.sub("***", text)
    return _KEY_FIELD.sub(r"\1***", text)


def error_lines(stdout: str, stderr: str) -> list[str]:
    """The error headlines, causes, commander errors and prompts of one run, deduplicated."""
    lines: list[str] = []
    seen: set[str] = set()
    for raw in (clean(stdout) + "\n" + clean(stderr)).splitlines():
        match = _ERROR_LINE.match(raw)
        if not match:
            continue
        text = next(v for v in match.groupdict().values() if v is not None).strip()
        key = _NOISE.sub("", text)
        if key and key not in seen:
            seen.add(key)
            lines.append(text)
    return lines


def summary(stdout: str, stderr: str, count: int = 6) -> str:
    """What went wrong, in one line: the error chain, else the last lines printed."""
    lines = error_lines(stdout, stderr)
    if not lines:
        tail = [
            line.strip()
            for line in (clean(stdout) + "\n" + clean(stderr)).splitlines()
            if line.strip() and not line.startswith(("Oops", "If you think this is a bug"))
        ]
        lines = tail[-count:]
    return " | ".join(lines[:count])


def is_not_found(message: str, name: str) -> bool:
    """The CLI said this very instance does not exist (`Instance named 'x' does not exist.`)."""
    return any(m.group("name") == name for m in _MISSING.finditer(message))


def is_provisioned(instance: Instance) -> bool:
    """Whether provisioning finished (a failed create leaves inputs-only state behind)."""
    return instance.metadata.get("provisioned") == "true"


def is_already(message: str) -> bool:
    """The CLI said the instance is already in the wanted state."""
    return bool(_ALREADY.search(message))


def needs_prompt(message: str) -> bool:
    """The CLI stopped at a question it could not ask (no TTY)."""
    return bool(_PROMPT.search(message))


_CLASSES: tuple[tuple[Callable[[str], object], ErrorReason, bool, str], ...] = (
    (_CAPACITY.search, ErrorReason.NO_CAPACITY, False, ""),
    (_AUTH.search, ErrorReason.UNAUTHORIZED, False, ""),
    # A question the CLI could not ask: an option the operator did not pass. Retrying
    # asks it again.
    (needs_prompt, ErrorReason.INVALID_REQUEST, False, " (the CLI needed an answer)"),
    (_NO_PULUMI.search, ErrorReason.CLI_FAILED, False, " (`pulumi` must be on the PATH)"),
    (_NETWORK.search, ErrorReason.CONNECTION_ERROR, True, ""),
    (_USAGE.search, ErrorReason.INVALID_REQUEST, False, ""),
    (_MISSING.search, ErrorReason.NOT_FOUND, False, ""),
)


def cli_error(what: str, exit_code: int | None, message: str) -> ProviderError:
    """Map a failed CLI run to a ProviderError (message already summarised and redacted).

    Anything unrecognised (Pulumi, Ansible, cloud hiccups) is retryable with backoff.
    """
    text = f"CloudyPad {what}: exit {exit_code}: {trim(message) or '(no output)'}"
    for matches, reason, retryable, hint in _CLASSES:
        if matches(message):
            return ProviderError(reason, text + hint, retryable=retryable)
    return ProviderError(ErrorReason.CLI_FAILED, text, retryable=True)
