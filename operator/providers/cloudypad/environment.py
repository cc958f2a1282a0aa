"""What one cloud's CloudyPad CLI runs see: environment variables and private files.

The cloud SDKs under CloudyPad read credentials under names and in files of their own
(checked against CloudyPad 0.45.1): Google reads `GOOGLE_APPLICATION_CREDENTIALS` (a file
path) and never `GOOGLE_CREDENTIALS`; Azure's DefaultAzureCredential reads
`AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`/`AZURE_TENANT_ID` (Pulumi's azure-native the
`ARM_*` copies); CloudyPad refuses Scaleway without `~/.config/scw/config.yaml`; AWS
reads `AWS_*`; Paperspace `PAPERSPACE_API_KEY`.

So every adapter gets a private folder (0700, removed by `aclose`) that is the HOME of
its CLI runs and holds the credential files (0600). CloudyPad's own state stays where it
would be with the real HOME (`$CLOUDYPAD_HOME`, default `~/.cloudypad`), and so do
Pulumi's plugins (`PULUMI_HOME`, default `~/.pulumi`): an operator restart finds every
instance again.

`$CLOUDYPAD_HOME/config.yml` is written before the first run: without it the CLI
enables PostHog analytics (`CLOUDYPAD_ANALYTICS_DISABLE` does nothing in 0.45.1), and
with PostHog unreachable a failed create was seen to exit 0.

Every run gets a data root of its own (`run_root`): CloudyPad 0.45.1 rewrites
`config.yml` in place (`writeFileSync`, truncate then write) on every start, so two runs
sharing one root raced, and the loser read an empty file ("Couldn't parse Config with
Zod ... null"). The run's root holds a copy of `config.yml` and a link to the shared
`instances/` folder; Pulumi's file backend is pinned to the shared root
(`PULUMI_BACKEND_URL`), where CloudyPad would put it by default.
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PASSTHROUGH_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"})
CLOUDYPAD_ENV_PREFIX = "CLOUDYPAD_"
"""CloudyPad's own settings (CLOUDYPAD_HOME, ...) pass through too."""

GOOGLE_JSON_KEY = "GOOGLE_CREDENTIALS"
"""Secret key holding a service-account JSON; it becomes a file, never an env value."""
AZURE_TO_ARM = {
    "AZURE_CLIENT_ID": "ARM_CLIENT_ID",
    "AZURE_CLIENT_SECRET": "ARM_CLIENT_SECRET",
    "AZURE_TENANT_ID": "ARM_TENANT_ID",
    "AZURE_SUBSCRIPTION_ID": "ARM_SUBSCRIPTION_ID",
}
SCALEWAY_CONFIG = {
    "SCW_ACCESS_KEY": "access_key",
    "SCW_SECRET_KEY": "secret_key",
    "SCW_DEFAULT_PROJECT_ID": "default_project_id",
    "SCW_DEFAULT_ORGANIZATION_ID": "default_organization_id",
    "SCW_DEFAULT_REGION": "default_region",
    "SCW_DEFAULT_ZONE": "default_zone",
}
CONFIG_FILE = "config.yml"
INSTANCES_DIR = "instances"
PULUMI_BACKEND_DIR = "pulumi-backend"
KEYS_DIR = "gamevm-ssh-keys"


def analytics_off_config() -> str:
    """`config.yml` that answers CloudyPad's consent question: collect nothing."""
    document = {
        "version": "1",
        "analytics": {
            "promptedPersonalDataCollectionApproval": True,
            "posthog": {"distinctId": str(uuid.uuid4()), "collectionMethod": "none"},
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A unique temporary name: the five CloudyPad providers may write the same file at once.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    Path(tmp).replace(path)


@dataclass
class CliEnvironment:
    """The environment and private files of one cloud's CLI runs."""

    cloud: str
    credentials: Mapping[str, str]
    home: str | None = None
    """`settings.cloudypad_home`; unset: $CLOUDYPAD_HOME, else ~/.cloudypad."""
    extra_env: Mapping[str, str] = field(default_factory=dict)
    private_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cloudypad_home(self) -> Path:
        """Where CloudyPad keeps config.yml and the instances' state."""
        return Path(self.env["CLOUDYPAD_HOME"])

    @property
    def secrets(self) -> list[str]:
        """Every credential value, to redact from messages."""
        return [v for v in self.credentials.values() if v]

    def prepare(self) -> None:
        """Create the private folder, its files and the environment (blocking: run in a
        thread)."""
        if self.private_dir is not None:
            return
        private = Path(tempfile.mkdtemp(prefix=f"gamevm-cloudypad-{self.cloud}-"))
        private.chmod(0o700)
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k in PASSTHROUGH_ENV or k.startswith(CLOUDYPAD_ENV_PREFIX)
        }
        inherited.update(self.extra_env)
        user_home = inherited.get("HOME") or str(Path.home())
        env = dict(inherited)
        env["HOME"] = str(private)
        env["CLOUDYPAD_HOME"] = (
            self.home or inherited.get("CLOUDYPAD_HOME") or str(Path(user_home) / ".cloudypad")
        )
        env.setdefault("PULUMI_HOME", str(Path(user_home) / ".pulumi"))
        env.setdefault(
            "PULUMI_BACKEND_URL", f"file://{Path(env['CLOUDYPAD_HOME']) / PULUMI_BACKEND_DIR}"
        )
        env["CLOUDYPAD_CONTAINER_NO_TTY"] = "1"
        env.update(self._credential_env(private))
        self.env = env
        self.private_dir = private
        self._write_config()

    def _credential_env(self, private: Path) -> dict[str, str]:
        env = {k: v for k, v in self.credentials.items() if k != GOOGLE_JSON_KEY}
        google_json = self.credentials.get(GOOGLE_JSON_KEY)
        if google_json:
            path = private / "gcp-credentials.json"
            _write_private(path, google_json)
            env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)
        for azure, arm in AZURE_TO_ARM.items():
            if self.credentials.get(azure):
                env.setdefault(arm, self.credentials[azure])
        scaleway = {
            key: self.credentials[var]
            for var, key in SCALEWAY_CONFIG.items()
            if self.credentials.get(var)
        }
        if "access_key" in scaleway:
            config = private / ".config" / "scw" / "config.yaml"
            _write_private(config, yaml.safe_dump(scaleway, sort_keys=False))
        return env

    def _write_config(self) -> None:
        path = self.cloudypad_home / CONFIG_FILE
        try:
            current = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            current = None
        analytics = current.get("analytics", {}) if isinstance(current, dict) else {}
        posthog = analytics.get("posthog", {}) if isinstance(analytics, dict) else {}
        if (
            isinstance(posthog, dict)
            and posthog.get("collectionMethod") == "none"
            and analytics.get("promptedPersonalDataCollectionApproval") is True
        ):
            return
        self.cloudypad_home.mkdir(parents=True, exist_ok=True)
        _write_private(path, analytics_off_config())

    def run_root(self) -> Path:
        """A data root for one CLI run (blocking: run in a thread; remove it with
        `remove_run_root`): a copy of the shared `config.yml` and the shared `instances/`."""
        if self.private_dir is None:
            raise RuntimeError("prepare() first")
        shared = self.cloudypad_home
        (shared / INSTANCES_DIR).mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="run-", dir=self.private_dir))
        (root / INSTANCES_DIR).symlink_to(shared / INSTANCES_DIR, target_is_directory=True)
        shutil.copyfile(shared / CONFIG_FILE, root / CONFIG_FILE)
        return root

    @staticmethod
    def remove_run_root(root: Path) -> None:
        """Remove a run's root (the link only, never the shared instances)."""
        shutil.rmtree(root, ignore_errors=True)

    def ssh_key_for(self, name: str) -> str:
        """A private key file for instance `name` (created once; kept beside CloudyPad's
        state, which refers to it on every later start): Paperspace needs one."""
        path = self.cloudypad_home / KEYS_DIR / name
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            _write_private(path, pem.decode())
            public = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            path.with_name(name + ".pub").write_text(public.decode() + "\n")
        return str(path)

    def forget_ssh_key(self, name: str) -> None:
        """Remove the key of a destroyed instance."""
        for path in (
            self.cloudypad_home / KEYS_DIR / name,
            self.cloudypad_home / KEYS_DIR / (name + ".pub"),
        ):
            path.unlink(missing_ok=True)

    def remove(self) -> None:
        """Remove the private folder (credential files included)."""
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)
            self.private_dir = None
