"""Configuring a VM into a Wolf host: what the operator sends and what the VM reports.

Providers that boot plain images (TensorDock) get cloud-init user data at create
(`services.userdata`); the VM reports back with its bearer token (`POST
/v1/gamevms/{namespace}/{name}/configuration`). Providers that configure the VM
themselves (CloudyPad) say so through `Instance.configured`. Either way the phase is
`running` only once the VM is configured AND Wolf answers.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gamevm.models.gamevm import GameVMStatus
from gamevm.models.names import WOLF_SERVER_IMAGE

REPORT_PATH = "/v1/gamevms/{namespace}/{name}/configuration"
ACTIVITY_PATH = "/v1/gamevms/{namespace}/{name}/activity"
MAX_REPORT_MESSAGE = 512


@dataclass(frozen=True)
class ConfigurationReport:
    """What a VM said about its configuration (authenticated by its heartbeat token)."""

    received_at: datetime
    ready: bool
    """The VM's configuration finished and started Wolf."""
    games_mounted: bool
    message: str
    address: str | None = None
    """The public address the report came from (`services.vmaddress`), if usable."""


def already_stored(status: GameVMStatus, report: ConfigurationReport) -> bool:
    """The VM said this before, about the current instance, and status holds it: a resent
    report (its client timed out waiting, or it restarted) needs no write."""
    stored = status.configuration
    decided = status.decision.decided_at if status.decision else None
    return (
        stored is not None
        and stored.reported_at is not None
        and (decided is None or stored.reported_at >= decided)
        and (stored.ready, stored.games_mounted, stored.message or "", stored.address)
        == (report.ready, report.games_mounted, report.message, report.address)
    )


@dataclass(frozen=True)
class WolfHostConfig:
    """Operator-wide inputs of the user data."""

    public_url: str | None
    """Base URL VMs reach the operator's HTTP server at; None: they cannot report."""
    wolf_image: str = WOLF_SERVER_IMAGE

    def url(self, path: str, namespace: str, name: str) -> str | None:
        """An endpoint of this VM on the operator, or None without a public URL."""
        if not self.public_url:
            return None
        return self.public_url.rstrip("/") + path.format(namespace=namespace, name=name)


class SecretReader(Protocol):
    """Reads a Secret in the operator's namespace (game library credentials)."""

    async def read(self, name: str) -> Mapping[str, str] | None:
        """Its decoded data, or None when it is missing or not readable."""
        ...
