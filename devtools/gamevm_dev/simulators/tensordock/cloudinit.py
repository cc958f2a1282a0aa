"""What a simulated VM does with the `cloud_init` it was created with.

A real TensorDock VM boots a plain Ubuntu image and runs the user data once; only that
makes it a Wolf host. The simulator reads the user data the same way a VM would act on
it, without running anything:

- the scripts `runcmd` runs are the `write_files` files it names, and every file those
  scripts name in turn (a script that is written but never run does nothing);
- Wolf starts only when a run script enables `wolf.service`, that unit exists and runs
  `docker run` with host networking of a Wolf image (`games-on-whales/wolf`, directly or
  through `WOLF_IMAGE` from the VM's env file), and Docker is installed (`packages`);
- the library counts as mounted when a run script enables `gamevm-games.service` and
  that unit runs `rclone mount ... --read-only`;
- the report is the POST a run script makes with curl to `GAMEVM_REPORT_URL` with
  `GAMEVM_TOKEN`, both read from the env file the user data writes.
"""

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WOLF_UNIT = "/etc/systemd/system/wolf.service"
LIBRARY_UNIT = "/etc/systemd/system/gamevm-games.service"
ENV_FILE = "/etc/gamevm/gamevm.env"
DOCKER_PACKAGES = frozenset({"docker.io", "docker-ce"})
MAX_DEPTH = 5


@dataclass(frozen=True)
class Plan:
    """What the user data would do on the VM."""

    starts_wolf: bool = False
    mounts_library: bool = False
    report_url: str | None = None
    token: str | None = field(default=None, repr=False)
    ran: tuple[str, ...] = ()
    """Paths of the scripts that would run, in order."""


def _files(cloud_init: Mapping[str, Any]) -> dict[str, str]:
    files = {}
    for entry in cloud_init.get("write_files") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
            files[entry["path"]] = str(entry.get("content", ""))
    return files


def _commands(cloud_init: Mapping[str, Any]) -> list[list[str]]:
    commands = []
    for entry in cloud_init.get("runcmd") or []:
        if isinstance(entry, str):
            try:
                commands.append(shlex.split(entry))
            except ValueError:
                continue
        elif isinstance(entry, list):
            commands.append([str(part) for part in entry])
    return commands


def _run_scripts(files: Mapping[str, str], commands: list[list[str]]) -> list[str]:
    """Files the commands execute, then the files those name, depth-first, once each."""
    ran: list[str] = []

    def visit(path: str, depth: int) -> None:
        if path in ran or depth > MAX_DEPTH:
            return
        ran.append(path)
        content = files[path]
        named = sorted(
            (content.find(other), other) for other in files if other != path and other in content
        )
        for _position, other in named:
            if other.endswith(".sh"):
                visit(other, depth + 1)

    for command in commands:
        for token in command:
            if token in files:
                visit(token, 0)
    return ran


def _env(content: str) -> dict[str, str]:
    values = {}
    for line in content.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if len(words) == 1 and "=" in words[0]:
            key, value = words[0].split("=", 1)
            values[key] = value
    return values


def _enables(scripts: list[str], files: Mapping[str, str], unit: str) -> bool:
    pattern = re.compile(rf"systemctl\s+(?:enable\s+--now|start|restart)\s+{re.escape(unit)}")
    return any(pattern.search(files[path]) for path in scripts)


def interpret(cloud_init: Mapping[str, Any] | None) -> Plan:
    """The Plan of a VM created with this `cloud_init` (None: a plain image, nothing)."""
    if not cloud_init:
        return Plan()
    files = _files(cloud_init)
    scripts = _run_scripts(files, _commands(cloud_init))
    env = _env(files.get(ENV_FILE, ""))
    packages = {str(p) for p in cloud_init.get("packages") or [] if isinstance(p, str)}
    unit = files.get(WOLF_UNIT, "")
    image = env.get("GAMEVM_WOLF_IMAGE", "") if "WOLF_IMAGE" in unit else unit
    starts_wolf = (
        bool(packages & DOCKER_PACKAGES)
        and "docker run" in unit
        and ("--network host" in unit or "--network=host" in unit)
        and "games-on-whales/wolf" in image
        and _enables(scripts, files, "wolf.service")
    )
    library_unit = files.get(LIBRARY_UNIT, "")
    mounts_library = (
        "rclone mount" in library_unit
        and "--read-only" in library_unit
        and _enables(scripts, files, "gamevm-games.service")
    )
    reports = any(
        "curl" in files[path] and "-X POST" in files[path] and "GAMEVM_REPORT_URL" in files[path]
        for path in scripts
    )
    return Plan(
        starts_wolf=starts_wolf,
        mounts_library=mounts_library,
        report_url=(env.get("GAMEVM_REPORT_URL") or None) if reports else None,
        token=env.get("GAMEVM_TOKEN") if reports else None,
        ran=tuple(scripts),
    )
