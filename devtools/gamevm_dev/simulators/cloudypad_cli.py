"""`cloudypad-sim`: a non-interactive CloudyPad CLI look-alike (the 0.45.1 command surface).

It behaves like the real CLI run without a TTY wherever both can run (the same contract
tests run against both: tests/contract/test_cloudypad_cli_contract.py):
- errors are logged on **stdout** tslog-style (ANSI colours, ` Error  <headline>`,
  `Caused by (n): Error: <cause>`, a stack), stderr only says `Oops, something went
  wrong`; option-parsing errors go to stderr as `error: ...` (commander), exit 1;
- a question the real CLI would ask (a missing option, `--yes` missing, a name that is not
  lodash kebab-case) is printed as `? <question>` and dies with `ExitPromptError`;
- `$CLOUDYPAD_HOME/config.yml` is created when missing (analytics `technical`, as the
  real CLI does without a TTY); while analytics is on, every run ends with the PostHog
  flush error on stderr (no network here);
- state lives in `$CLOUDYPAD_HOME/instances/<name>/state.yml`; `get` prints
  `{...state, status}` including the generated SSH private key
  (`provision.input.ssh.privateKeyContentBase64`), like the real CLI;
- stop deletes the server on gcp, aws, azure and scaleway unless
  `--delete-instance-server-on-stop no` was passed at create: `get` then says
  `serverStatus: unknown` and not configured, and `start` re-provisions and reconfigures;
- `create dummy --instance-type T` is CloudyPad's offline provider.

Commands: create <gcp|aws|azure|paperspace|scaleway|dummy> ..., get <name>, list
[--format plain|json], start|stop|restart <name> [--wait] [--timeout s], destroy <name>
[--yes], --version (0.45.1). Simulator only: `sim-wolf <name> busy|free`.

What only the simulator does (the real CLI cannot run offline): real clouds' timings
(x $CLOUDYPAD_SIM_DELAY_SCALE, default 1, 0 = instant): create = provision 60 +
configure 120; start 45, stop 20, restart 60, destroy 30; a Wolf responder per running
VM on a loopback port (`provision.output.portForwards`); faults
(gamevm_dev.simulators.cloudypad.faults). `ready` is true when serverStatus is running
and the Wolf port accepts TCP (CloudyPad's `nc -z localhost 47989`).
"""

import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import yaml

from gamevm_dev.simulators.cloudypad import clouds
from gamevm_dev.simulators.cloudypad.faults import Faults
from gamevm_dev.simulators.cloudypad.kebab import kebab_case
from gamevm_dev.simulators.cloudypad.store import (
    InstanceDir,
    append_log,
    instance_names,
    locked,
)
from gamevm_dev.simulators.ports import WOLF_HTTP_PORT, port_open

VERSION = "0.45.1"
PROVISION_S = 60.0
CONFIGURE_S = 120.0
START_S = 45.0
STOP_S = 20.0
RESTART_S = 60.0
DESTROY_S = 30.0
DUMMY_POWER_S = 10.0
"""The real dummy provider's start/stop delay (its state's start/stopDelaySeconds)."""
WOLF_BOOT_TIMEOUT_S = 15.0
"""Wall-clock bound for the responder process to bind once its boot time has come."""
TRUE_VALUES = ("true", "yes", "1", "y")
FALSE_VALUES = ("disable", "no", "false", "0")
RED, GREY, BOLD, RESET = "\x1b[31m", "\x1b[37m", "\x1b[1m", "\x1b[0m"
OOPS = (
    "\nOops, something went wrong \U0001f628 Full error is shown above.\n\n"
    "If you think this is a bug, please file an issue with full error: "
    "https://github.com/PierreBeucher/cloudypad/issues\n"
)


class CliError(Exception):
    """A failed command: its error chain (headline first), logged like tslog."""

    def __init__(self, *chain: str, prompt: str | None = None) -> None:
        super().__init__(chain[-1] if chain else "error")
        self.chain = list(chain)
        self.prompt = prompt


class UsageError(Exception):
    """Commander's option-parsing error: `error: <message>` on stderr, exit 1."""


def prompt_error(headline: str, question: str) -> CliError:
    """The real CLI reaching a question without a TTY."""
    return CliError(
        headline,
        "Failed to prompt input",
        "ExitPromptError: User force closed the prompt with 0 null",
        prompt=question,
    )


def _scale() -> float:
    try:
        return max(0.0, float(os.environ.get("CLOUDYPAD_SIM_DELAY_SCALE", "1")))
    except ValueError:
        return 1.0


def _sleep(seconds: float) -> None:
    delay = seconds * _scale()
    if delay > 0:
        time.sleep(delay)


# -- option parsing (commander's behaviour) ---------------------------------------------


@dataclass
class Parsed:
    """A command, its positional arguments and options (by option name)."""

    command: str
    args: list[str] = field(default_factory=list)
    options: dict[str, str | bool] = field(default_factory=dict)

    def opt(self, option: str) -> str | None:
        """A valued option."""
        value = self.options.get(option)
        return value if isinstance(value, str) else None

    def flag(self, option: str) -> bool | None:
        """A bool option: None when absent."""
        if option not in self.options:
            return None
        value = self.options[option]
        return value if isinstance(value, bool) else str(value).lower() not in FALSE_VALUES


POWER_OPTIONS = {"--wait": "switch", "--timeout": "value", "--retries": "value"}
POWER_OPTIONS |= {"--retry-delay": "value", "--force-pulumi-cancel": "switch"}
DESTROY_OPTIONS = {"--yes": "switch", "--retries": "value", "--retry-delay": "value"}
DESTROY_OPTIONS |= {"--force-pulumi-cancel": "switch"}
COMMAND_OPTIONS: dict[str, dict[str, str]] = {
    "get": {},
    "list": {"--format": "value"},
    "start": POWER_OPTIONS,
    "stop": POWER_OPTIONS,
    "restart": POWER_OPTIONS,
    "destroy": DESTROY_OPTIONS,
    "sim-wolf": {},
}
POSITIONALS = {"get": 1, "list": 0, "start": 1, "stop": 1, "restart": 1, "destroy": 1}
POSITIONALS["sim-wolf"] = 2


def _parse_options(argv: list[str], kinds: dict[str, str]) -> tuple[list[str], dict[str, Any]]:
    args: list[str] = []
    options: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--"):
            args.append(token)
            continue
        option, _, inline = token.partition("=")
        kind = kinds.get(option)
        if kind is None:
            raise UsageError(f"unknown option '{option}'")
        if kind == "switch":
            options[option] = True
        elif inline:
            options[option] = inline
        elif kind == "value":
            if i >= len(argv):
                raise UsageError(f"option '{option} <value>' argument missing")
            options[option] = argv[i]
            i += 1
        elif i < len(argv) and not argv[i].startswith("--"):  # bool with a value
            options[option] = argv[i]
            i += 1
        else:
            options[option] = True
    return args, options


def parse(argv: Sequence[str]) -> Parsed:
    """Commander-like parsing: unknown options and missing arguments are usage errors."""
    argv = list(argv)
    if not argv:
        raise UsageError("missing command")
    command = argv.pop(0)
    if command == "create":
        if not argv or argv[0] not in clouds.FLAGS:
            raise UsageError(f"unknown command '{argv[0] if argv else ''}'")
        provider = argv.pop(0)
        flags = (*clouds.COMMON_FLAGS, *clouds.FLAGS[provider])
        args, options = _parse_options(argv, {f.option: f.kind for f in flags})
        if args:
            raise UsageError(f"too many arguments for 'create {provider}'")
        return Parsed("create", [provider], options)
    if command not in COMMAND_OPTIONS:
        raise UsageError(f"unknown command '{command}'")
    args, options = _parse_options(argv, COMMAND_OPTIONS[command])
    if len(args) < POSITIONALS[command]:
        raise UsageError("missing required argument 'name'")
    if len(args) > POSITIONALS[command]:
        raise UsageError(f"too many arguments for '{command}'")
    return Parsed(command, args, options)


# -- commands -------------------------------------------------------------------------


def _home() -> Path:
    """The simulator's home: where its state, log, faults and lock live.

    A caller may give each run a data root of its own whose `instances/` links to a
    shared one (the operator does: the real CLI rewrites config.yml at every start); the
    simulator then keeps its own files beside the shared `instances/`, so every run sees
    one log, one set of faults and one lock, as the real CLI sees one state.
    """
    root = clouds.env_home(os.environ)
    instances = root / "instances"
    return instances.resolve().parent if instances.is_symlink() else root


def _require_credentials(provider: str, headline: str, api_key_file: str | None = None) -> None:
    problem = clouds.credentials_error(provider, os.environ, api_key_file)
    if problem:
        raise CliError(headline, *problem)


def _fake_private_key() -> str:
    body = base64.b64encode(os.urandom(180)).decode()
    pem = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"
    return base64.b64encode(pem.encode()).decode()


def _create_inputs(parsed: Parsed, headline: str) -> dict[str, Any]:
    """Every option of the cloud, asking (and so dying) where the real CLI would ask."""
    provider = parsed.args[0]
    name = parsed.opt("--name")
    if name is None:
        raise prompt_error(headline, "? Enter instance instanceName:")
    if kebab_case(name) != name:
        raise prompt_error(
            headline,
            f"? Instance name must be kebab case. Use {kebab_case(name)} instead? (Y/n)",
        )
    if not parsed.options.get("--yes"):
        raise prompt_error(
            headline,
            "? Be aware most Cloud providers have quotas for GPU and some machine types. "
            "You may need to request a quota increase to create your instance.",
        )
    inputs: dict[str, Any] = {}
    for flag in clouds.FLAGS[provider]:
        present = flag.option in parsed.options
        if flag.option == "--disk-size" and "--root-disk-size" in parsed.options:
            present = True
        if provider == "paperspace" and flag.option == "--api-key-file":
            continue
        if not present and flag.prompt:
            raise prompt_error(headline, f"? {flag.prompt}")
        if present:
            inputs[flag.key] = (
                parsed.flag(flag.option) if flag.kind != "value" else parsed.opt(flag.option)
            )
    return inputs


def _initial_state(parsed: Parsed, inputs: dict[str, Any]) -> dict[str, Any]:
    provider = parsed.args[0]
    delete_on_stop = inputs.pop("deleteInstanceServerOnStop", None)
    if delete_on_stop is None:
        delete_on_stop = provider in clouds.STOP_DELETES_SERVER
    snapshot = inputs.pop("dataDiskSnapshot", None)
    server = inputs.pop("streamingServer", None) or "sunshine"
    autostop = bool(inputs.pop("autostop", False))
    provision_input: dict[str, Any] = {
        "ssh": {"user": "ubuntu", "privateKeyContentBase64": _fake_private_key()},
        **{k: v for k, v in inputs.items() if v is not None},
        "deleteInstanceServerOnStop": delete_on_stop,
        "runtime": {"instanceServerState": "present", "dataDiskState": "live"},
    }
    if snapshot:
        provision_input["dataDiskSnapshot"] = {"enable": True}
    return {
        "version": "1",
        "name": parsed.opt("--name"),
        "provision": {"provider": provider, "input": provision_input},
        "configuration": {
            "configurator": "ansible",
            "input": {
                "autostop": {"enable": autostop},
                "sunshine": {"enable": True} if server == "sunshine" else None,
                "wolf": {"enable": server == "wolf"},
            },
        },
    }


def _provision_and_configure(inst: InstanceDir, state: dict[str, Any], seconds: float) -> None:
    """Create the server (a Wolf responder that binds once configuration is done)."""
    provider = state["provision"]["provider"]
    inputs = state["provision"]["input"]
    if provider != "dummy":
        _sleep(PROVISION_S * seconds)
    output = state["provision"].get("output") or clouds.provision_output(
        provider, str(state["name"]), inputs
    )
    configure_s = 0.0 if provider == "dummy" else CONFIGURE_S * _scale() * seconds
    port = inst.start_wolf(not_before=time.time() + configure_s)
    output["portForwards"] = {str(WOLF_HTTP_PORT): port}
    state["provision"]["output"] = output
    inputs["runtime"]["instanceServerState"] = "present"
    inst.write_power("starting", configure_s)
    inst.write_state(state)
    if configure_s:
        time.sleep(configure_s)
    state["configuration"]["output"] = {"dataDiskConfigured": False}
    inst.write_state(state)
    _await_wolf(inst)


def cmd_create(parsed: Parsed, faults: Faults) -> None:
    """create <provider>: ask what is missing, provision, configure, start Wolf."""
    provider = parsed.args[0]
    headline = "Instance initialization failed"
    inputs = _create_inputs(parsed, headline)
    name = str(parsed.opt("--name"))
    _require_credentials(provider, headline, parsed.opt("--api-key-file"))
    problem = clouds.validate_placement(provider, inputs)
    if problem:
        raise CliError(headline, problem)
    home = _home()
    inst = InstanceDir(home, name)
    with locked(home):
        if inst.exists and not parsed.options.get("--overwrite-existing"):
            raise prompt_error(
                headline,
                f"? Instance {name} already exists. Do you want to overwrite existing "
                "instance config? (y/N)",
            )
        inst.stop_wolf()
        state = _initial_state(parsed, inputs)
        inst.write_state(state)
        inst.write_power("stopped")
    if faults.silent_create_failure():
        print_error(CliError(headline, "Provision failed after 1 attempts.", "simulated"))
        return
    if faults.no_capacity(provider, clouds.placement(provider, inputs)):
        _sleep(PROVISION_S / 4)
        raise CliError(
            headline, "Provision failed after 1 attempts.", clouds.capacity_error(provider, inputs)
        )
    _provision_and_configure(inst, state, 1.0)
    if faults.crash_after_create():
        raise CliError(
            headline, f"connection lost while deploying instance {name} (simulated crash)"
        )
    print("\nInstance has been initialized successfully \U0001f973\n")


def _load(name: str, headline: str) -> tuple[InstanceDir, dict[str, Any]]:
    inst = InstanceDir(_home(), name)
    if not inst.exists:
        raise CliError(headline, f"Instance named '{name}' does not exist.")
    return inst, inst.read_state()


def status_of(inst: InstanceDir, state: dict[str, Any]) -> dict[str, Any]:
    """status{serverStatus, provisioned, configured, ready}."""
    provision = state.get("provision", {})
    provisioned = bool(provision.get("output"))
    server_absent = (
        provision.get("input", {}).get("runtime", {}).get("instanceServerState") == "absent"
    )
    configured = bool(state.get("configuration", {}).get("output"))
    server = "unknown"
    if provisioned and not server_absent:
        server = inst.read_power().get("phase", "unknown")
    port = inst.wolf_port()
    ready = server == "running" and configured and port is not None and port_open(port)
    return {
        "serverStatus": server,
        "provisioned": provisioned,
        "configured": configured,
        "ready": ready,
    }


def _refresh_port(inst: InstanceDir, state: dict[str, Any]) -> None:
    """The responder may have had to pick another port: publish the one it bound."""
    output = state.get("provision", {}).get("output")
    port = inst.wolf_port()
    if output and port is not None:
        output["portForwards"] = {str(WOLF_HTTP_PORT): port}


def cmd_get(parsed: Parsed, faults: Faults) -> None:
    """get <name>: JSON state plus status."""
    name = parsed.args[0]
    inst, state = _load(name, f"Failed to get details of instance {name}")
    if faults.garbage_get():
        print('Warning: unexpected token in state {"provision": {"provider": "gcp", "in')
        return
    _refresh_port(inst, state)
    print(json.dumps({**state, "status": status_of(inst, state)}, indent=2))


def cmd_list(parsed: Parsed, _faults: Faults) -> None:
    """list: names only."""
    names = instance_names(_home())
    if not names:
        print("No instances found.")
    elif parsed.opt("--format") == "json":
        print(json.dumps(names))
    else:
        print("\n".join(names))


def _await_wolf(inst: InstanceDir, timeout_s: float = WOLF_BOOT_TIMEOUT_S) -> None:
    """Configuration ends with Wolf listening (CloudyPad's readiness check)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        port = inst.wolf_port()
        if port is not None and port_open(port):
            return
        time.sleep(0.05)
    raise CliError(f"Instance {inst.name} is not ready: Wolf does not answer on {WOLF_HTTP_PORT}")


def _wait(seconds: float, parsed: Parsed, inst: InstanceDir, target: str) -> None:
    if not parsed.options.get("--wait"):
        return
    timeout = parsed.opt("--timeout")
    if timeout is not None and float(timeout) < seconds:
        time.sleep(max(0.0, float(timeout)))
        raise CliError(f"Timeout after {timeout}s waiting for {inst.name} to be {target}")
    time.sleep(seconds)
    if target == "running":
        _await_wolf(inst)


def _power_seconds(state: dict[str, Any], cloud_s: float) -> float:
    if state.get("provision", {}).get("provider") == "dummy":
        return DUMMY_POWER_S * _scale()
    return cloud_s * _scale()


def _power_target(parsed: Parsed, action: str) -> tuple[InstanceDir, dict[str, Any], str]:
    name = parsed.args[0]
    headline = f"Failed to {action} instance {name}"
    inst, state = _load(name, headline)
    _require_credentials(state.get("provision", {}).get("provider", ""), headline)
    if not state.get("provision", {}).get("output"):
        raise CliError(headline, f"Instance {name} is not provisioned: run deploy first")
    return inst, state, status_of(inst, state)["serverStatus"]


def cmd_start(parsed: Parsed, _faults: Faults) -> None:
    """start <name>: re-create a server a stop deleted, power on; Wolf answers once booted."""
    inst, state, phase = _power_target(parsed, "start")
    print(f"Starting instance {inst.name}...")
    if state["provision"]["input"].get("runtime", {}).get("instanceServerState") == "absent":
        _provision_and_configure(inst, state, START_S / (PROVISION_S + CONFIGURE_S))
    elif phase not in ("running", "starting", "restarting"):
        seconds = _power_seconds(state, START_S)
        until = inst.write_power("starting", seconds)
        inst.start_wolf(not_before=until)
        _wait(seconds, parsed, inst, "running")
    print(f"Started instance {inst.name}")


def cmd_stop(parsed: Parsed, _faults: Faults) -> None:
    """stop <name>: power off (and delete the server where that is the default)."""
    inst, state, phase = _power_target(parsed, "stop")
    print(f"Stopping instance {inst.name}...")
    if phase not in ("stopped", "stopping", "unknown"):
        inst.stop_wolf()
        seconds = _power_seconds(state, STOP_S)
        inst.write_power("stopping", seconds)
        _wait(seconds, parsed, inst, "stopped")
    if state["provision"]["input"].get("deleteInstanceServerOnStop"):
        # CloudyPad's default: the server is destroyed on stop and re-created on start.
        state["provision"]["input"]["runtime"]["instanceServerState"] = "absent"
        state["configuration"].pop("output", None)
        inst.write_power("stopped")
        inst.write_state(state)
    print(f"Stopped instance {inst.name}")


def cmd_restart(parsed: Parsed, _faults: Faults) -> None:
    """restart <name>."""
    inst, state, _phase = _power_target(parsed, "restart")
    inst.stop_wolf()
    seconds = _power_seconds(state, RESTART_S)
    until = inst.write_power("restarting", seconds)
    inst.start_wolf(not_before=until)
    _wait(seconds, parsed, inst, "running")
    print(f"Restarted instance {inst.name}")


def cmd_destroy(parsed: Parsed, _faults: Faults) -> None:
    """destroy <name> --yes: power off, remove the state."""
    name = parsed.args[0]
    headline = f"Failed to destroy instance {name}"
    if not parsed.options.get("--yes"):
        raise prompt_error(
            headline, f"? You are about to destroy instance '{name}'. Please confirm: (y/N)"
        )
    inst, state = _load(name, headline)
    _require_credentials(state.get("provision", {}).get("provider", ""), headline)
    inst.stop_wolf()
    if state.get("provision", {}).get("provider") != "dummy":
        _sleep(DESTROY_S)
    with locked(inst.home):
        inst.stop_wolf()  # a concurrent start may have spawned one meanwhile
        for child in sorted(inst.path.iterdir(), reverse=True):
            if child.is_file():
                child.unlink()
        inst.path.rmdir()
    print(f"\nDestroyed instance {name}")


def cmd_sim_wolf(parsed: Parsed, _faults: Faults) -> None:
    """sim-wolf <name> busy|free."""
    name, wanted = parsed.args
    if wanted not in ("busy", "free"):
        raise UsageError(f"argument state: invalid choice '{wanted}' (busy or free)")
    inst, _state = _load(name, f"Failed to set Wolf state of {name}")
    inst.wolf_state_file.write_text(wanted)
    print(f"Wolf of {name} is {wanted}")


COMMANDS = {
    "create": cmd_create,
    "get": cmd_get,
    "list": cmd_list,
    "start": cmd_start,
    "stop": cmd_stop,
    "restart": cmd_restart,
    "destroy": cmd_destroy,
    "sim-wolf": cmd_sim_wolf,
}


# -- output -----------------------------------------------------------------------------


def _ensure_config(home: Path) -> bool:
    """Create config.yml like the real CLI without a TTY; True when analytics is on."""
    path = home / "config.yml"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        default = {
            "version": "1",
            "analytics": {
                "promptedPersonalDataCollectionApproval": True,
                "posthog": {"distinctId": str(uuid.uuid4()), "collectionMethod": "technical"},
            },
        }
        path.write_text(yaml.safe_dump(default, sort_keys=False))
    try:
        config: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return True
    analytics: Any = config.get("analytics") if isinstance(config, dict) else None
    posthog: Any = analytics.get("posthog") if isinstance(analytics, dict) else None
    return not (isinstance(posthog, dict) and posthog.get("collectionMethod") == "none")


def print_error(error: CliError) -> None:
    """tslog's rendering of an error chain on stdout."""
    if error.prompt:
        print(f"{BOLD}{error.prompt}{RESET}")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    where = f"{GREY}cloudypad/dist/src/cli/program.js:40{RESET}"
    chain = error.chain
    for depth in range(len(chain)):
        lead = "Caused by:\n" if depth else ""
        print(f"{GREY}{stamp}{RESET}\t{RED}{BOLD}ERROR{RESET}\t{where}\tprogram\t{lead}")
        print(f"{BOLD} Error {RESET} {chain[depth]}")
        print("error stack:\n  • program.js\tCommand.<anonymous>")
        for number, cause in enumerate(chain[depth + 1 :], start=1):
            label = cause if "Error" in cause.split(":")[0] else f"Error: {cause}"
            print(f"Caused by ({number}): {label}")
            print("  • cli.js\tasync Command.<anonymous>")


def _fail_usage(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        print(VERSION)
        return
    try:
        parsed = parse(argv)
    except UsageError as exc:
        _fail_usage(str(exc))
    home = _home()
    analytics_on = _ensure_config(home)
    try:
        faults = Faults(home)
    except ValueError as exc:
        _fail_usage(f"invalid simulator fault file: {exc}")
    code = 0
    name = parsed.opt("--name") if parsed.command == "create" else next(iter(parsed.args), None)
    try:
        if faults.delay_s > 0:
            time.sleep(faults.delay_s)
        if parsed.command != "sim-wolf":
            failure = faults.fails(parsed.command)
            if failure:
                raise CliError(f"Failed to {parsed.command} instance {name}", failure)
        COMMANDS[parsed.command](parsed, faults)
    except UsageError as exc:
        _fail_usage(str(exc))
    except CliError as exc:
        code = 1
        print_error(exc)
        sys.stdout.flush()
        sys.stderr.write(OOPS)
        if parsed.command == "create":
            sys.stderr.write(
                "\n\u26a0\ufe0f Your instance was not created successfully. To cleanup "
                "resources and avoid leaving orphaned resources which may be charged, run:"
                f"\n\n    cloudypad destroy {name}\n"
            )
    finally:
        if analytics_on:
            sys.stderr.write(
                "Error while flushing PostHog PostHogFetchNetworkError: Network error while "
                "fetching PostHog\n"
            )
        entry = {
            "command": parsed.command,
            "name": name,
            "provider": parsed.args[0] if parsed.command == "create" else None,
            "exit": code,
        }
        append_log(home, entry)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
