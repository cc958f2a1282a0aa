"""The Wolf-host user data, validated offline: cloud-init's own schema, bash -n, shellcheck."""

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gamevm.models import ConsoleType, GameLibrary
from gamevm.services.userdata import (
    CONFIGURE_SCRIPT,
    SCRIPTS,
    WolfHostRequest,
    render_user_data,
    template,
)
from tests.fixtures.cloudinit_schema import cloud_config_schema

TOKEN = "heartbeat-token-value-abc"
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
# The keys TensorDock documents for `cloud_init` (reference/providers.md 1b).
DOCUMENTED_KEYS = {"runcmd", "packages", "package_update", "package_upgrade", "write_files"}
S3 = GameLibrary.model_validate(
    {
        "source": "s3",
        "url": "s3://retro-games/switch",
        "endpoint": "https://minio.example.com",
        "region": "eu-west-1",
        "credentialsSecretRef": {"name": "games"},
    }
)
HTTP = GameLibrary.model_validate({"source": "http", "url": "https://games.example.com/nes/"})


def request(**overrides: Any) -> WolfHostRequest:
    values: dict[str, Any] = {
        "console": ConsoleType.SWITCH,
        "gpu": True,
        "wolf_image": "ghcr.io/games-on-whales/wolf:stable@sha256:" + "a" * 64,
        "report_url": "https://operator.example.com/v1/gamevms/default/mario/configuration",
        "heartbeat_url": "https://operator.example.com/v1/gamevms/default/mario/activity",
        "token": TOKEN,
        **overrides,
    }
    return WolfHostRequest(**values)


VARIANTS = {
    "gpu-no-library": request(),
    "cpu-retro": request(console=ConsoleType.NES, gpu=False),
    "s3-with-credentials": request(
        library=S3, library_credentials={"access-key-id": "AK", "secret-access-key": "SK"}
    ),
    "http-anonymous": request(console=ConsoleType.NES, library=HTTP),
    "no-report-url": request(report_url=None, heartbeat_url=None),
    **{f"console-{c.value}": request(console=c) for c in ConsoleType},
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    schema = cloud_config_schema()
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_user_data_passes_cloud_inits_schema(
    name: str, validator: jsonschema.Draft4Validator
) -> None:
    user_data = render_user_data(VARIANTS[name])
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(user_data)]
    assert errors == []
    # cloud-init does not report unknown top-level keys: check them against the docs.
    assert set(user_data) <= DOCUMENTED_KEYS
    assert user_data["runcmd"] == [[CONFIGURE_SCRIPT]]


@pytest.mark.parametrize(
    "breakage",
    [
        {"packages": "docker.io"},
        {"runcmd": "configure.sh"},
        {"write_files": [{"content": "no path"}]},
        {"package_update": "yes"},
        {"write_files": [{"path": "/x", "permissions": 644}]},
    ],
)
def test_the_schema_catches_broken_user_data(
    breakage: dict[str, Any], validator: jsonschema.Draft4Validator
) -> None:
    broken = {**render_user_data(request()), **breakage}
    assert list(validator.iter_errors(broken)), f"{breakage} was accepted"


def _files(user_data: dict[str, Any]) -> dict[str, str]:
    return {f["path"]: f["content"] for f in user_data["write_files"]}


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_pass_bash_n_and_shellcheck(name: str, tmp_path: Path) -> None:
    script = tmp_path / f"{name}.sh"
    script.write_text(template(f"{name}.sh"))
    bash = shutil.which("bash")
    assert bash is not None
    syntax = subprocess.run([bash, "-n", str(script)], check=False, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    check = subprocess.run(
        [str(SHELLCHECK), "--shell=bash", "--severity=style", str(script)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("name", ["s3-with-credentials", "http-anonymous", "gpu-no-library"])
def test_env_files_read_back_exactly_in_bash(name: str, tmp_path: Path) -> None:
    """The per-VM values survive shell quoting: bash reads back what was rendered."""
    files = _files(render_user_data(VARIANTS[name]))
    for path, content in files.items():
        if not path.endswith((".env", ".conf")):
            continue
        env_path = tmp_path / Path(path).name
        env_path.write_text(content)
        check = subprocess.run(
            # SC2034: the variables are used by the scripts that source the file.
            [str(SHELLCHECK), "--shell=bash", "--exclude=SC2034", str(env_path)],
            check=False,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout
        expected = dict(shlex.split(line)[0].split("=", 1) for line in content.splitlines())
        dumped = subprocess.run(
            ["bash", "-c", f'set -a; . "{env_path}"; env -0'], capture_output=True, check=True
        ).stdout.decode()
        seen = dict(item.split("=", 1) for item in dumped.split("\0") if "=" in item)
        for key, value in expected.items():
            assert seen[key] == value


def test_wolf_setup_and_report_are_present() -> None:
    files = _files(render_user_data(request()))
    unit = files["/etc/systemd/system/wolf.service"]
    assert "docker run" in unit
    assert "--network host" in unit
    assert "EnvironmentFile=/etc/gamevm/wolf.env" in unit
    assert "systemctl enable --now wolf.service" in files["/usr/local/lib/gamevm/wolf.sh"]
    assert "-X POST" in files["/usr/local/lib/gamevm/report.sh"]
    env = files["/etc/gamevm/gamevm.env"]
    assert "GAMEVM_REPORT_URL=https://operator.example.com/v1/gamevms/default/mario/" in env
    assert "GAMEVM_GPU=nvidia" in env


def test_secrets_stay_in_root_only_files_and_out_of_repr() -> None:
    req = VARIANTS["s3-with-credentials"]
    user_data = render_user_data(req)
    holders = [f for f in user_data["write_files"] if TOKEN in f["content"] or "SK" in f["content"]]
    assert {f["path"] for f in holders} == {
        "/etc/gamevm/gamevm.env",
        "/etc/gamevm/library-credentials.env",
    }
    assert all(f["permissions"] == "0600" for f in holders)
    assert TOKEN not in repr(req)
    assert "SK" not in repr(req).replace("SKIP", "")


def test_library_mount_only_when_configured() -> None:
    without = _files(render_user_data(request()))
    assert "/etc/gamevm/library.conf" not in without
    assert "rclone" not in render_user_data(request())["packages"]
    with_s3 = render_user_data(VARIANTS["s3-with-credentials"])
    conf = _files(with_s3)["/etc/gamevm/library.conf"]
    assert "RCLONE_CONFIG_GAMES_TYPE=s3" in conf
    assert "GAMEVM_LIBRARY_PATH=retro-games/switch" in conf
    assert "--read-only" in _files(with_s3)["/etc/systemd/system/gamevm-games.service"]
    anonymous = _files(render_user_data(VARIANTS["http-anonymous"]))
    assert "/etc/gamevm/library-credentials.env" not in anonymous
