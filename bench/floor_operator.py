"""The floor: a bare kopf operator that only sets status.phase=running on each GameVM.

Run: `python bench/floor_operator.py <namespace>` with KUBECONFIG set. It watches the
same CRD as the real operator and does the least an operator can do: one status patch
per object, applied by kopf itself after the handler.
"""

import logging
import sys
from typing import Any

import kopf

from gamevm.models.names import GAMEVM_PLURAL, GROUP, VERSION


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """No Events from log lines: the floor writes nothing but the status patch."""
    settings.posting.enabled = False
    print("floor operator started", flush=True)


def needs_running(phase: object, event_type: str | None) -> bool:
    """Whether this watch event should patch status.phase=running."""
    return event_type != "DELETED" and phase != "running"


@kopf.on.event(GROUP, VERSION, GAMEVM_PLURAL)
def mark_running(status: kopf.Status, patch: kopf.Patch, type: str | None, **_: Any) -> None:  # noqa: A002
    """Patch status.phase=running once (kopf applies `patch` after the handler)."""
    if needs_running(status.get("phase"), type):
        patch.status["phase"] = "running"


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    kopf.run(standalone=True, namespaces=sys.argv[1:2], clusterwide=len(sys.argv) < 2)
