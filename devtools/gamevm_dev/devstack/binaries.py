"""Finding (or building once) the binaries of the local control plane.

Lookup order for each Kubernetes binary: its own variable (GAMEVM_KUBE_APISERVER,
GAMEVM_KUBE_CONTROLLER_MANAGER, GAMEVM_KUBECTL, GAMEVM_ETCD), then
KUBEBUILDER_ASSETS, then PATH, then the cache folder (~/.cache/gamevm/bin or
GAMEVM_BIN_DIR); kube-apiserver, kube-controller-manager and kubectl are built
there with the machine's Go by hack/build-kube.sh when nothing is found, and etcd by
hack/build-go-wrapper.sh (from hack/etcd, a wrapper module pinned to etcd 3.6.16), so a
fresh machine needs only Go: no system etcd. FerretDB (the second Mongo-wire server of the
tests, see ferretdb.py) is built by the same script from hack/ferretdb; it is looked up only
in GAMEVM_FERRETDB and the cache, never on PATH (the wrapper's flags are ours).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KUBE_VERSION = "v1.34.4"
"""The pinned Kubernetes release; passed to hack/build-kube.sh as KUBE_VERSION (the
script's own default only matters when it is run by hand)."""

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-kube.sh"
WRAPPER_BUILD_SCRIPT = REPO_ROOT / "hack" / "build-go-wrapper.sh"
_WRAPPERS = ("etcd", "ferretdb")
"""Binaries built from our own wrapper modules (hack/NAME) by WRAPPER_BUILD_SCRIPT; the rest
by hack/build-kube.sh."""

Progress = Callable[[str], None]
_HEARTBEAT_SECONDS = 30.0


class BinaryNotFoundError(RuntimeError):
    """A binary could not be found or built; the message says what to install or set."""


@dataclass(frozen=True)
class BinarySpec:
    """How to find one binary."""

    name: str
    env_var: str
    buildable: bool
    install_hint: str
    search_path: bool = True
    """Also look in KUBEBUILDER_ASSETS and PATH (not for our own wrapper binaries)."""


KUBE_APISERVER = BinarySpec(
    "kube-apiserver",
    "GAMEVM_KUBE_APISERVER",
    buildable=True,
    install_hint="install Go 1.24+ so hack/build-kube.sh can build it, or set "
    "GAMEVM_KUBE_APISERVER / KUBEBUILDER_ASSETS to an existing kube-apiserver",
)
KUBE_CONTROLLER_MANAGER = BinarySpec(
    "kube-controller-manager",
    "GAMEVM_KUBE_CONTROLLER_MANAGER",
    buildable=True,
    install_hint="install Go 1.24+ so hack/build-kube.sh can build it, or set "
    "GAMEVM_KUBE_CONTROLLER_MANAGER to an existing kube-controller-manager",
)
KUBECTL = BinarySpec(
    "kubectl",
    "GAMEVM_KUBECTL",
    buildable=True,
    install_hint="install kubectl (or Go 1.24+ to build it), or set GAMEVM_KUBECTL",
)
ETCD = BinarySpec(
    "etcd",
    "GAMEVM_ETCD",
    buildable=True,
    install_hint="install Go 1.24+ so hack/build-go-wrapper.sh can build it, "
    "or set GAMEVM_ETCD to an etcd 3.4.22+ binary",
)
FERRETDB = BinarySpec(
    "ferretdb",
    "GAMEVM_FERRETDB",
    buildable=True,
    install_hint="install Go 1.24+ so hack/build-go-wrapper.sh can build it, or set "
    "GAMEVM_FERRETDB to a binary built from hack/ferretdb",
    search_path=False,
)


def bin_dir() -> Path:
    """The cache folder of built binaries (GAMEVM_BIN_DIR or ~/.cache/gamevm/bin)."""
    override = os.environ.get("GAMEVM_BIN_DIR")
    return Path(override) if override else Path.home() / ".cache" / "gamevm" / "bin"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_existing(spec: BinarySpec) -> Path | None:
    """The first existing binary in lookup order, without building anything."""
    explicit = os.environ.get(spec.env_var)
    if explicit:
        path = Path(explicit)
        if not _executable(path):
            raise BinaryNotFoundError(
                f"{spec.env_var}={explicit} is not an executable file; fix or unset it"
            )
        return path
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if spec.search_path and assets and _executable(Path(assets) / spec.name):
        return Path(assets) / spec.name
    on_path = shutil.which(spec.name) if spec.search_path else None
    if on_path:
        return Path(on_path)
    cached = bin_dir() / spec.name
    if _executable(cached) and _cached_version_ok(spec, cached):
        return cached
    return None


def _cached_version_ok(spec: BinarySpec, path: Path) -> bool:
    """Whether a binary in the cache was built from KUBE_VERSION (else it is rebuilt)."""
    if spec.name not in ("kube-apiserver", "kube-controller-manager"):
        return True
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return out.split()[-1:] == [KUBE_VERSION]


# Cold build times measured on a 2-core machine (module downloads included), for the
# "about N s left" progress lines; a warm Go cache is much faster.
_TYPICAL_BUILD_SECONDS = {
    "etcd": 70,
    "kube-apiserver": 270,
    "kube-controller-manager": 165,
    "kubectl": 45,
    "ferretdb": 115,
}


def build(names: list[str], progress: Progress) -> None:
    """Build the missing binaries into the cache folder: etcd and ferretdb from their wrapper
    modules (hack/build-go-wrapper.sh), the Kubernetes ones with hack/build-kube.sh."""
    if shutil.which("go") is None:
        raise BinaryNotFoundError(
            f"{', '.join(names)} not found and `go` is not on PATH to build "
            f"{'them' if len(names) > 1 else 'it'}: install Go 1.24+ (https://go.dev/dl/), "
            "or set KUBEBUILDER_ASSETS / GAMEVM_ETCD / GAMEVM_KUBE_APISERVER / "
            "GAMEVM_KUBE_CONTROLLER_MANAGER to existing binaries"
        )
    target = bin_dir()
    target.mkdir(parents=True, exist_ok=True)
    expected = sum(_TYPICAL_BUILD_SECONDS.get(name, 120) for name in names)
    progress(
        f"building {', '.join(names)} with Go into {target}: about {expected}s the first "
        f"time, cached afterwards (log: {target / 'build.log'})"
    )
    started = time.monotonic()
    kube = [name for name in names if name not in _WRAPPERS]
    for name in _WRAPPERS:
        if name in names:
            command = [str(WRAPPER_BUILD_SCRIPT), name, str(target)]
            _run_build(command, [name], started, expected, progress)
    if kube:
        _run_build([str(BUILD_SCRIPT), str(target), *kube], kube, started, expected, progress)
    progress(f"built {', '.join(names)} in {time.monotonic() - started:.0f}s")


def _run_build(
    command: list[str], names: list[str], started: float, expected: int, progress: Progress
) -> None:
    script = Path(command[0])
    if not script.exists():
        raise BinaryNotFoundError(
            f"{script} is missing (not a source checkout?); set "
            "GAMEVM_ETCD / GAMEVM_KUBE_APISERVER / GAMEVM_KUBE_CONTROLLER_MANAGER "
            "to existing binaries"
        )
    log = bin_dir() / "build.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["bash", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBE_VERSION": KUBE_VERSION},
        )
        # Go prints nothing for minutes while compiling: show that it is alive.
        while True:
            try:
                returncode = process.wait(timeout=_HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                progress(_build_progress(names, time.monotonic() - started, expected))
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BinaryNotFoundError(
            f"building {', '.join(names)} failed (exit {returncode}); see {log}:\n{tail}"
        )


def _build_progress(names: list[str], elapsed: float, expected: int) -> str:
    """One heartbeat line: elapsed, and what is left (or that the usual time has passed:
    the cold-build estimates come from an idle 2-core machine)."""
    left = expected - elapsed
    remaining = (
        f"about {left:.0f}s left"
        if left >= 1
        else f"past the usual {expected}s (a busy machine builds slower; log in {bin_dir()})"
    )
    return f"still building {', '.join(names)}: {elapsed:.0f}s elapsed, {remaining}"


def resolve(specs: list[BinarySpec], progress: Progress) -> dict[str, Path]:
    """Find every binary in `specs`, building the missing buildable ones in one go."""
    found: dict[str, Path] = {}
    missing: list[BinarySpec] = []
    for spec in specs:
        path = find_existing(spec)
        if path is None:
            missing.append(spec)
        else:
            found[spec.name] = path
    unbuildable = [spec for spec in missing if not spec.buildable]
    if unbuildable:
        raise BinaryNotFoundError(
            "; ".join(f"{spec.name} not found: {spec.install_hint}" for spec in unbuildable)
        )
    if missing:
        build([spec.name for spec in missing], progress)
        for spec in missing:
            path = bin_dir() / spec.name
            if not _executable(path):
                raise BinaryNotFoundError(f"{spec.name} not found after build: {spec.install_hint}")
            found[spec.name] = path
    return found
