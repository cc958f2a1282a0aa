"""The cloud-init user data that makes a plain Ubuntu VM a Wolf host. Pure: no I/O
besides reading the package's own templates.

What it installs (scripts in `templates/wolfhost/`, run once by cloud-init's `runcmd`):
the NVIDIA driver and container toolkit (GPU presets), Docker, Wolf as a systemd service
(`docker run --network host`, pinned image), the console's emulator app, the optional
read-only game library (rclone), and finally a report to the operator
(`POST .../configuration` with the VM's bearer token). Only keys TensorDock documents
for `cloud_init` are used: `package_update`, `packages`, `write_files`, `runcmd`.

Per-VM values go into shell-quoted env files, never into the scripts, so the scripts are
static and checked by shellcheck as they are. The heartbeat token and the library
credentials are in root-only files (0600): they reach the VM, which is unavoidable for
a VM that must authenticate itself (docs/wolf-host.md).
"""

import base64
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from gamevm.models.enums import ConsoleType
from gamevm.models.game_library import GameLibrary, GameLibrarySource

SCRIPT_DIR = "/usr/local/lib/gamevm"
CONFIG_DIR = "/etc/gamevm"
CONFIGURE_SCRIPT = f"{SCRIPT_DIR}/configure.sh"
SCRIPTS = ("configure", "gpu", "wolf", "emulator", "library", "report")
BASE_PACKAGES = ("ca-certificates", "curl", "gnupg", "docker.io", "pciutils")
LIBRARY_PACKAGES = ("rclone", "fuse3")

S3_ACCESS_KEY = "access-key-id"
S3_SECRET_KEY = "secret-access-key"  # noqa: S105 - a key name
HTTP_USERNAME = "username"
HTTP_PASSWORD = "password"  # noqa: S105 - a key name, not a password
LIBRARY_KEYS: Mapping[GameLibrarySource, tuple[str, str]] = {
    GameLibrarySource.S3: (S3_ACCESS_KEY, S3_SECRET_KEY),
    GameLibrarySource.HTTP: (HTTP_USERNAME, HTTP_PASSWORD),
}


@dataclass(frozen=True)
class WolfHostRequest:
    """Everything the user data depends on. `repr` hides the secrets."""

    console: ConsoleType
    gpu: bool
    wolf_image: str
    report_url: str | None
    """Where the VM POSTs its configuration report; None: the operator has no public URL."""
    heartbeat_url: str | None
    token: str = field(repr=False)
    library: GameLibrary | None = None
    library_credentials: Mapping[str, str] | None = field(default=None, repr=False)


@cache
def template(name: str) -> str:
    """One file of templates/wolfhost/ (package data)."""
    return (
        resources.files("gamevm.services")
        .joinpath("templates", "wolfhost", name)
        .read_text(encoding="utf-8")
    )


@cache
def emulator_table() -> dict[str, Any]:
    """templates/wolfhost/emulators.json: per console the frontend image, system, core."""
    loaded: dict[str, Any] = json.loads(template("emulators.json"))
    return loaded


def env_file(values: Mapping[str, str]) -> str:
    """KEY=value lines readable by bash `.` and by systemd's EnvironmentFile."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


def _file(path: str, content: str, permissions: str) -> dict[str, str]:
    return {"path": path, "owner": "root:root", "permissions": permissions, "content": content}


def render_user_data(req: WolfHostRequest) -> dict[str, Any]:
    """The `cloud_init` object for the create call (cloud-config as JSON)."""
    emulator = emulator_table()["consoles"][req.console.value]
    images = emulator_table()["images"]
    env = {
        "GAMEVM_CONSOLE": req.console.value,
        "GAMEVM_GPU": "nvidia" if req.gpu else "none",
        "GAMEVM_WOLF_IMAGE": req.wolf_image,
        "GAMEVM_EMULATOR_TITLE": emulator["title"],
        "GAMEVM_EMULATOR_IMAGE": images[emulator["image"]],
        "GAMEVM_EMULATOR_SYSTEM": emulator["system"],
        "GAMEVM_EMULATOR_CORE": emulator["core"],
        "GAMEVM_REPORT_URL": req.report_url or "",
        "GAMEVM_HEARTBEAT_URL": req.heartbeat_url or "",
        "GAMEVM_TOKEN": req.token,
    }
    files = [
        _file(f"{CONFIG_DIR}/gamevm.env", env_file(env), "0600"),
        _file("/etc/systemd/system/wolf.service", template("wolf.service"), "0644"),
        *(_file(f"{SCRIPT_DIR}/{name}.sh", template(f"{name}.sh"), "0755") for name in SCRIPTS),
    ]
    packages = list(BASE_PACKAGES)
    if req.library is not None:
        library_env = {"GAMEVM_LIBRARY_MOUNT": req.library.mount_path, **_rclone(req.library)}
        files.append(_file(f"{CONFIG_DIR}/library.conf", env_file(library_env), "0600"))
        credentials = _library_credentials(req.library, req.library_credentials or {})
        if credentials:
            files.append(
                _file(f"{CONFIG_DIR}/library-credentials.env", env_file(credentials), "0600")
            )
        files.append(
            _file(
                "/etc/systemd/system/gamevm-games.service",
                template("gamevm-games.service"),
                "0644",
            )
        )
        packages.extend(LIBRARY_PACKAGES)
    return {
        "package_update": True,
        "packages": packages,
        "write_files": files,
        "runcmd": [[CONFIGURE_SCRIPT]],
    }


def _rclone(library: GameLibrary) -> dict[str, str]:
    """rclone's remote `games` from environment variables (no config file)."""
    if library.source is GameLibrarySource.HTTP:
        return {
            "GAMEVM_LIBRARY_PATH": "",
            "RCLONE_CONFIG_GAMES_TYPE": "http",
            "RCLONE_CONFIG_GAMES_URL": library.url,
        }
    parts = urlsplit(library.url)
    values = {
        "GAMEVM_LIBRARY_PATH": f"{parts.netloc}{parts.path}",
        "RCLONE_CONFIG_GAMES_TYPE": "s3",
        "RCLONE_CONFIG_GAMES_PROVIDER": "Other" if library.endpoint else "AWS",
    }
    if library.endpoint:
        values["RCLONE_CONFIG_GAMES_ENDPOINT"] = library.endpoint
    if library.region:
        values["RCLONE_CONFIG_GAMES_REGION"] = library.region
    return values


def _library_credentials(library: GameLibrary, data: Mapping[str, str]) -> dict[str, str]:
    """The library's credentials as rclone variables (empty: anonymous access)."""
    first, second = (data.get(key, "") for key in LIBRARY_KEYS[library.source])
    if not first or not second:
        return {}
    if library.source is GameLibrarySource.S3:
        return {
            "RCLONE_CONFIG_GAMES_ACCESS_KEY_ID": first,
            "RCLONE_CONFIG_GAMES_SECRET_ACCESS_KEY": second,
        }
    basic = base64.b64encode(f"{first}:{second}".encode()).decode()
    return {"RCLONE_CONFIG_GAMES_HEADERS": f"Authorization,Basic {basic}"}
