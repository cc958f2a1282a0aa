"""`cloudypad-sim`: a non-interactive CloudyPad CLI look-alike (v0.45.1 command surface).

Commands (reference/providers.md section 2):
  create <gcp|aws|azure|paperspace|scaleway> --name N --yes --overwrite-existing
         --skip-pairing --streaming-server wolf <provider flags> [common flags]
  get <name>                 JSON: the state plus status{serverStatus, provisioned,
                             configured, ready}
  list [--format plain|json] names only (plain: one per line; json: an array)
  start|stop|restart <name> [--wait] [--timeout s]
  destroy <name> [--yes]
  --version                  prints 0.45.1
Simulator only:
  sim-wolf <name> busy|free  flips the VM's Wolf /serverinfo state

Behaviour where the real CLI would prompt: a missing required flag or a missing
`--yes` exits 1 with `Error: ...` on stderr. Unknown flags exit 2 (usage error).
Errors always go to stderr as `Error: <message>` with exit code 1; an unknown instance
gives `Error: Instance <name> not found`. `get` and `list` read local state and need no
credentials; the other commands check the cloud's credentials (see
gamevm_dev.simulators.cloudypad.clouds) and fail with a message naming what is missing.

Timing (seconds, x $CLOUDYPAD_SIM_DELAY_SCALE, default 1, 0 = instant): create =
provision 60 + configure 120 (blocking, like the real CLI); start 45, stop 20,
restart 60 (blocking with --wait, else the state moves on by the clock); destroy 30.
`ready` is true when serverStatus is running and the Wolf port accepts TCP
(CloudyPad's `nc -z localhost 47989`). Files and faults: gamevm_dev.simulators.cloudypad.store
and gamevm_dev.simulators.cloudypad.faults.
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from gamevm_dev.simulators.cloudypad import clouds
from gamevm_dev.simulators.cloudypad.faults import Faults
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
WOLF_BOOT_TIMEOUT_S = 15.0
"""Wall-clock bound for the responder process to bind once its boot time has come."""


class CliError(Exception):
    """Printed as `Error: <message>`, exit 1."""


def _scale() -> float:
    try:
        return max(0.0, float(os.environ.get("CLOUDYPAD_SIM_DELAY_SCALE", "1")))
    except ValueError:
        return 1.0


def _sleep(seconds: float) -> None:
    delay = seconds * _scale()
    if delay > 0:
        time.sleep(delay)


def _bool_flag(parser: argparse.ArgumentParser, option: str, help_text: str) -> None:
    """CloudyPad boolean options accept a bare flag or an explicit true/false/yes/no."""
    parser.add_argument(option, nargs="?", const="true", default=None, help=help_text)


def _truthy(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("true", "yes", "1", "y")


def _add_common_create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name")
    p.add_argument("--yes", action="store_true")
    p.add_argument("--overwrite-existing", action="store_true")
    p.add_argument("--skip-pairing", action="store_true")
    p.add_argument("--streaming-server", choices=("sunshine", "wolf"))
    p.add_argument("--ssh-private-key")
    p.add_argument("--disk-size", type=int)
    p.add_argument("--data-disk-size", type=int)
    p.add_argument("--autostop-timeout", type=int)
    p.add_argument("--cost-limit", type=float)
    p.add_argument("--cost-notification-email")
    p.add_argument("--ratelimit-max-mbps", type=float)
    for option in (
        "--keyboard-layout",
        "--keyboard-model",
        "--keyboard-variant",
        "--keyboard-options",
        "--retries",
        "--retry-delay",
    ):
        p.add_argument(option)
    for option in (
        "--spot",
        "--autostop",
        "--cost-alert",
        "--use-locale",
        "--delete-instance-server-on-stop",
        "--data-disk-snapshot",
        "--base-image-snapshot",
        "--force-pulumi-cancel",
    ):
        _bool_flag(p, option, "true/false")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree."""
    parser = argparse.ArgumentParser(prog="cloudypad", description="CloudyPad simulator")
    parser.add_argument("--version", action="version", version=VERSION)
    sub = parser.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="create an instance")
    providers = create.add_subparsers(dest="provider", required=True)
    for provider, flags in clouds.FLAGS.items():
        p = providers.add_parser(provider)
        _add_common_create_flags(p)
        for flag in flags:
            p.add_argument(flag.option, dest=flag.key)

    get = sub.add_parser("get")
    get.add_argument("name")
    listing = sub.add_parser("list")
    listing.add_argument("--format", choices=("plain", "json"), default="plain")
    for command in ("start", "stop", "restart"):
        p = sub.add_parser(command)
        p.add_argument("name")
        p.add_argument("--wait", action="store_true")
        p.add_argument("--timeout", type=float, default=None)
        p.add_argument("--retries")
        p.add_argument("--retry-delay")
        _bool_flag(p, "--force-pulumi-cancel", "true/false")
    destroy = sub.add_parser("destroy")
    destroy.add_argument("name")
    destroy.add_argument("--yes", action="store_true")
    destroy.add_argument("--retries")
    destroy.add_argument("--retry-delay")
    _bool_flag(destroy, "--force-pulumi-cancel", "true/false")
    wolf = sub.add_parser("sim-wolf", help="simulator only: set the Wolf state")
    wolf.add_argument("name")
    wolf.add_argument("state", choices=("busy", "free"))
    return parser


# -- commands -------------------------------------------------------------------------


def _home() -> Path:
    return clouds.env_home(os.environ)


def _require_credentials(provider: str, api_key_file: str | None = None) -> None:
    problem = clouds.credentials_error(provider, os.environ, api_key_file)
    if problem:
        raise CliError(problem)


def _provider_inputs(args: argparse.Namespace) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    missing = []
    for flag in clouds.FLAGS[args.provider]:
        value = getattr(args, flag.key)
        if value is None and flag.required:
            missing.append(flag.option)
        if value is not None and flag.key != "apiKeyFile":
            inputs[flag.key] = value
    if missing:
        raise CliError(f"Missing required option(s) {', '.join(missing)} (no TTY: cannot prompt)")
    return inputs


def _initial_state(args: argparse.Namespace, inputs: dict[str, Any]) -> dict[str, Any]:
    provision_input: dict[str, Any] = {
        "ssh": {
            "user": "ubuntu",
            "privateKeyPath": args.ssh_private_key or "~/.ssh/id_ed25519",
        },
        **inputs,
        "diskSize": args.disk_size or 100,
        "dataDiskSizeGb": args.data_disk_size or 0,
        "publicIpType": "static",
        "useSpot": bool(_truthy(args.spot)),
        "costAlert": (
            {"limit": args.cost_limit, "notificationEmail": args.cost_notification_email}
            if _truthy(args.cost_alert) or args.cost_limit is not None
            else None
        ),
        "deleteInstanceServerOnStop": _truthy(args.delete_instance_server_on_stop),
    }
    server = args.streaming_server or "sunshine"
    config_input: dict[str, Any] = {
        "sunshine": {"enable": server == "sunshine"},
        "wolf": {"enable": server == "wolf"},
        "autostop": {
            "enable": bool(_truthy(args.autostop)),
            "timeoutSeconds": args.autostop_timeout or 900,
        },
        "ratelimit": {"maxMbps": args.ratelimit_max_mbps},
    }
    return {
        "version": "1",
        "name": args.name,
        "provision": {"provider": args.provider, "input": provision_input},
        "configuration": {"configurator": "ansible", "input": config_input},
    }


def cmd_create(args: argparse.Namespace, faults: Faults) -> None:
    """create <provider>: provision, configure, start Wolf."""
    if not args.name:
        raise CliError("Missing required option --name (no TTY: cannot prompt)")
    if not args.yes:
        raise CliError("Confirmation required: pass --yes (no TTY: cannot prompt)")
    inputs = _provider_inputs(args)
    _require_credentials(args.provider, getattr(args, "apiKeyFile", None))
    problem = clouds.validate_placement(args.provider, inputs)
    if problem:
        raise CliError(problem)
    home = _home()
    inst = InstanceDir(home, args.name)
    with locked(home):
        if inst.exists and not args.overwrite_existing:
            raise CliError(
                f"Instance {args.name} already exists. Use --overwrite-existing to replace it"
            )
        inst.stop_wolf()
        state = _initial_state(args, inputs)
        inst.write_state(state)
        inst.write_power("stopped")
    if faults.no_capacity(args.provider, clouds.placement(args.provider, inputs)):
        _sleep(PROVISION_S / 4)
        raise CliError(clouds.capacity_error(args.provider, inputs))
    _sleep(PROVISION_S)
    output = clouds.provision_output(args.provider, args.name, inputs)
    port = inst.start_wolf(not_before=time.time() + CONFIGURE_S * _scale())
    output["portForwards"] = {str(WOLF_HTTP_PORT): port}
    state["provision"]["output"] = output
    inst.write_power("starting", CONFIGURE_S * _scale())
    inst.write_state(state)
    _sleep(CONFIGURE_S)
    state["configuration"]["output"] = {"dataDiskConfigured": True}
    inst.write_state(state)
    _await_wolf(inst)
    if faults.crash_after_create():
        raise CliError(f"connection lost while deploying instance {args.name} (simulated crash)")
    print(f"Instance {args.name} created: host 127.0.0.1. Pairing skipped.")


def _load(name: str) -> tuple[InstanceDir, dict[str, Any]]:
    inst = InstanceDir(_home(), name)
    if not inst.exists:
        raise CliError(f"Instance {name} not found")
    return inst, inst.read_state()


def status_of(inst: InstanceDir, state: dict[str, Any]) -> dict[str, Any]:
    """status{serverStatus, provisioned, configured, ready}."""
    provisioned = bool(state.get("provision", {}).get("output"))
    configured = bool(state.get("configuration", {}).get("output"))
    server = inst.read_power().get("phase", "unknown") if provisioned else "unknown"
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


def cmd_get(args: argparse.Namespace, faults: Faults) -> None:
    """get <name>: JSON state plus status."""
    inst, state = _load(args.name)
    if faults.garbage_get():
        print('Warning: unexpected token in state {"provision": {"provider": "gcp", "in')
        return
    _refresh_port(inst, state)
    print(json.dumps({**state, "status": status_of(inst, state)}, indent=2))


def cmd_list(args: argparse.Namespace, _faults: Faults) -> None:
    """list: names only."""
    names = instance_names(_home())
    if args.format == "json":
        print(json.dumps(names))
    else:
        for name in names:
            print(name)


def _await_wolf(inst: InstanceDir, timeout_s: float = WOLF_BOOT_TIMEOUT_S) -> None:
    """Configuration ends with Wolf listening (CloudyPad's readiness check)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        port = inst.wolf_port()
        if port is not None and port_open(port):
            return
        time.sleep(0.05)
    raise CliError(f"Instance {inst.name} is not ready: Wolf does not answer on {WOLF_HTTP_PORT}")


def _wait(seconds: float, args: argparse.Namespace, inst: InstanceDir, target: str) -> None:
    if not args.wait:
        return
    if args.timeout is not None and args.timeout < seconds:
        time.sleep(max(0.0, args.timeout))
        raise CliError(f"Timeout after {args.timeout}s waiting for {args.name} to be {target}")
    time.sleep(seconds)
    if target == "running":
        _await_wolf(inst)


def _power_command(args: argparse.Namespace) -> tuple[InstanceDir, str]:
    inst, state = _load(args.name)
    provider = state.get("provision", {}).get("provider", "")
    _require_credentials(provider)
    if not state.get("provision", {}).get("output"):
        raise CliError(f"Instance {args.name} is not provisioned: run deploy first")
    return inst, inst.read_power().get("phase", "unknown")


def cmd_start(args: argparse.Namespace, _faults: Faults) -> None:
    """start <name>: power on; Wolf answers once booted."""
    inst, phase = _power_command(args)
    if phase in ("running", "starting", "restarting"):
        print(f"Instance {args.name} is already {phase}")
        return
    seconds = START_S * _scale()
    until = inst.write_power("starting", seconds)
    inst.start_wolf(not_before=until)
    _wait(seconds, args, inst, "running")
    print(f"Instance {args.name} started")


def cmd_stop(args: argparse.Namespace, _faults: Faults) -> None:
    """stop <name>: power off; Wolf stops answering at once."""
    inst, phase = _power_command(args)
    if phase in ("stopped", "stopping"):
        print(f"Instance {args.name} is already {phase}")
        return
    inst.stop_wolf()
    seconds = STOP_S * _scale()
    inst.write_power("stopping", seconds)
    _wait(seconds, args, inst, "stopped")
    print(f"Instance {args.name} stopped")


def cmd_restart(args: argparse.Namespace, _faults: Faults) -> None:
    """restart <name>."""
    inst, _phase = _power_command(args)
    inst.stop_wolf()
    seconds = RESTART_S * _scale()
    until = inst.write_power("restarting", seconds)
    inst.start_wolf(not_before=until)
    _wait(seconds, args, inst, "running")
    print(f"Instance {args.name} restarted")


def cmd_destroy(args: argparse.Namespace, _faults: Faults) -> None:
    """destroy <name> --yes: power off, remove the state."""
    inst, state = _load(args.name)
    if not args.yes:
        raise CliError("Confirmation required: pass --yes (no TTY: cannot prompt)")
    _require_credentials(state.get("provision", {}).get("provider", ""))
    inst.stop_wolf()
    _sleep(DESTROY_S)
    with locked(inst.home):
        inst.stop_wolf()  # a concurrent start may have spawned one meanwhile
        for child in sorted(inst.path.iterdir(), reverse=True):
            if child.is_file():
                child.unlink()
        inst.path.rmdir()
    print(f"Instance {args.name} destroyed")


def cmd_sim_wolf(args: argparse.Namespace, _faults: Faults) -> None:
    """sim-wolf <name> busy|free."""
    inst, _state = _load(args.name)
    inst.wolf_state_file.write_text(args.state)
    print(f"Wolf of {args.name} is {args.state}")


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


def _fail(message: str) -> NoReturn:
    print(f"Error: {message}", file=sys.stderr)
    raise SystemExit(1)


def main(argv: Sequence[str] | None = None) -> None:
    """Console script entry point."""
    args = build_parser().parse_args(argv)
    home = _home()
    try:
        faults = Faults(home)
    except ValueError as exc:
        _fail(f"invalid simulator fault file: {exc}")
    code = 0
    try:
        if faults.delay_s > 0:
            time.sleep(faults.delay_s)
        if args.command != "sim-wolf":
            failure = faults.fails(args.command)
            if failure:
                raise CliError(failure)
        COMMANDS[args.command](args, faults)
    except CliError as exc:
        code = 1
        print(f"Error: {exc}", file=sys.stderr)
    finally:
        entry = {
            "command": args.command,
            "name": getattr(args, "name", None),
            "provider": getattr(args, "provider", None),
            "exit": code,
        }
        append_log(home, entry)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
