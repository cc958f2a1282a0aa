"""The local MongoDB-wire-compatible server: found or installed once, cached, started on loopback.

The default server is SecantusDB (a MongoDB-wire server over WiredTiger, from PyPI), installed
into its own virtualenv under ``~/.cache/gamevm``. It is the only candidate reachable here
that passes tests/e2e/test_mongo_compat.py: unique, compound and TTL indexes with
``partialFilterExpression`` (and real expiry), tz-aware datetimes, guarded upserts.
FerretDB 1.24.2 on PostgreSQL is the tests' second server (ferretdb.py): it lacks TTL and
partial indexes, so it runs the mirror's degraded paths. Rejected: mongo-java-server
1.47.0 logs "adding secondary index ... is not yet implemented. ignoring" for non-unique
indexes and never reads expireAfterSeconds or partialFilterExpression.

``GAMEVM_MONGO_BIN`` points at another server binary instead; a ``mongod`` (real MongoDB)
gets its own command line, anything else is run like SecantusDB.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from gamevm_dev.filelock import exclusive

SECANTUS_PACKAGE: Final = "secantusdb"
SECANTUS_VERSION: Final = "0.7.0b3"
SECANTUS_SCRIPT: Final = "secantusd-py"
BIN_ENV: Final = "GAMEVM_MONGO_BIN"
CACHE_ENV: Final = "GAMEVM_CACHE_DIR"
LOOPBACK: Final = "127.0.0.1"
INSTALL_TIMEOUT_SECONDS: Final = 900.0
_MARKER: Final = ".gamevm-installed"


class MongoBinaryError(RuntimeError):
    """The server binary cannot be found or installed; the message says what to do."""


def cache_dir() -> Path:
    """Root of gamevm's download/build cache (``GAMEVM_CACHE_DIR`` or ``~/.cache/gamevm``)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "gamevm"


def _progress(message: str) -> None:
    print(f"[mongo] {message}", file=sys.stderr, flush=True)


def _run_install_step(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MongoBinaryError(f"{what} failed: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise MongoBinaryError(
            f"{what} failed (exit {result.returncode}). It needs PyPI access; or set "
            f"{BIN_ENV} to a MongoDB-compatible server binary (e.g. mongod).\n{tail}"
        )


def _install_secantus(venv: Path) -> None:
    """A private virtualenv keeps the server's dependencies out of the project's."""
    started = time.monotonic()
    _progress(
        f"installing {SECANTUS_PACKAGE} {SECANTUS_VERSION} (MongoDB-wire-compatible server) "
        f"from PyPI into {venv} ..."
    )
    shutil.rmtree(venv, ignore_errors=True)
    _run_install_step([sys.executable, "-m", "venv", str(venv)], "creating the virtualenv")
    _run_install_step(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"{SECANTUS_PACKAGE}=={SECANTUS_VERSION}",
        ],
        f"pip install {SECANTUS_PACKAGE}=={SECANTUS_VERSION}",
    )
    (venv / _MARKER).write_text(f"{SECANTUS_PACKAGE}=={SECANTUS_VERSION}\n")
    _progress(f"installed in {time.monotonic() - started:.1f} s")


def mongo_binary() -> Path:
    """The server executable: ``$GAMEVM_MONGO_BIN``, else the cached SecantusDB (installed once).

    Blocking (it may run pip for a minute on a fresh machine): call it from a thread when
    an event loop is running.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise MongoBinaryError(
                f"{BIN_ENV}={override} is not an executable file; unset it to use the cached "
                f"{SECANTUS_PACKAGE} server, or point it at a mongod/ferretdb binary."
            )
        return path
    venv = cache_dir() / f"{SECANTUS_PACKAGE}-{SECANTUS_VERSION}"
    binary = venv / "bin" / SECANTUS_SCRIPT
    if (venv / _MARKER).is_file() and binary.is_file():
        return binary
    # Serialise installs between processes (`make dev` and a test run may race).
    with exclusive(cache_dir() / f"{SECANTUS_PACKAGE}.lock"):
        if not ((venv / _MARKER).is_file() and binary.is_file()):
            _install_secantus(venv)
    if not binary.is_file():
        raise MongoBinaryError(f"{binary} missing after install; delete {venv} and retry.")
    return binary


def _secantus_config(cache_size: str) -> str:
    # No ttl_sweep_seconds: SecantusDB's CLI reads it but does not pass it to the server
    # (0.7.0b3), so its TTL sweeper always runs every 60 s, like mongod's default.
    return (
        "# Written by gamevm-operator (devstack/mongo.py); regenerated on every start.\n"
        "[storage]\n"
        f'cache_size = "{cache_size}"\n'
    )


def mongo_command(
    binary: Path,
    data_dir: Path,
    port: int,
    *,
    ttl_sweep_seconds: float = 60.0,
    cache_size: str = "256M",
) -> list[str]:
    """Command line serving ``data_dir`` on 127.0.0.1:``port`` only.

    Creates ``data_dir``. For SecantusDB it also writes ``data_dir/secantusd.toml`` (passing
    ``--config`` turns off its auto-discovery of config files in the working directory and
    home). ``ttl_sweep_seconds`` sets mongod's ttlMonitorSleepSecs (how often expired TTL
    documents go; default 60 s); SecantusDB always sweeps every 60 s and has the command
    ``secantusAdmin.pruneTtl`` for an immediate pass.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    name = binary.name
    if name.startswith("mongod"):
        return [
            str(binary),
            "--bind_ip",
            LOOPBACK,
            "--port",
            str(port),
            "--dbpath",
            str(data_dir),
            "--setParameter",
            f"ttlMonitorSleepSecs={max(1, int(ttl_sweep_seconds))}",
        ]
    config = data_dir / "secantusd.toml"
    config.write_text(_secantus_config(cache_size))
    storage = data_dir / "wiredtiger"
    return [
        str(binary),
        "--config",
        str(config),
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--storage-path",
        str(storage),
        "--standalone",
        "--log-level",
        "WARNING",
    ]


def mongo_uri(port: int) -> str:
    """Connection URI of the local server (database chosen by GAMEVM_MONGODB_DATABASE)."""
    return f"mongodb://{LOOPBACK}:{port}/"


def wait_until_ready(
    port: int, timeout: float = 30.0, process: "subprocess.Popen[bytes] | None" = None
) -> float:
    """Block until the server answers ``ping``; returns the seconds waited.

    Raises MongoBinaryError when ``process`` exits first or ``timeout`` passes.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise MongoBinaryError(
                f"the Mongo-compatible server exited with code {process.returncode} before "
                f"answering on {LOOPBACK}:{port} (port taken? data dir locked by another server?)"
            )
        client: MongoClient[dict[str, object]] = MongoClient(
            mongo_uri(port), serverSelectionTimeoutMS=250, connectTimeoutMS=250
        )
        try:
            client.admin.command("ping")
            return time.monotonic() - started
        except PyMongoError:
            if time.monotonic() > deadline:
                raise MongoBinaryError(
                    f"no Mongo-compatible server answered on {LOOPBACK}:{port} within {timeout} s"
                ) from None
            time.sleep(0.1)
        finally:
            client.close()
