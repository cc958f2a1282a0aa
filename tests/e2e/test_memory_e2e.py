"""What the operator keeps of each GameVM (bench/README.md, memory): kopf holds every
object's latest body for as long as it exists; the operator drops from it what nobody
reads again (gamevm.handlers.retention)."""

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.apimetrics import parse_request_totals
from tests.fixtures.operator_env import GameVMs, OperatorUnderTest
from tests.fixtures.stack import Kubectl

pytestmark = pytest.mark.e2e

LAUNCHER = Path(__file__).resolve().parent.parent / "fixtures" / "held_bodies_operator.py"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def test_held_bodies_keep_neither_managed_fields_nor_last_applied(
    kubectl: Kubectl,
    operator_starter: Callable[..., OperatorUnderTest],
    namespace: str,
    gamevms: GameVMs,
    tmp_path: Path,
) -> None:
    report = tmp_path / "held.json"
    operator = operator_starter(
        {
            "GAMEVM_WATCH_NAMESPACES": json.dumps([namespace]),
            "GAMEVM_TEST_HELD_BODIES": str(report),
        },
        command=[sys.executable, str(LAUNCHER)],
    )
    # `kubectl apply` writes the last-applied annotation; every writer adds managedFields.
    gamevms.apply("kept", autoStopTimeout=3600)
    gamevms.wait_phase("kept", "running")
    stored = gamevms.get("kept", managed_fields=True) or {}
    assert stored["metadata"]["managedFields"], "the API server keeps managedFields"
    assert LAST_APPLIED in stored["metadata"]["annotations"]

    # A user's annotation still reaches the daemon: the operator acts on the power request
    # (and removes the annotation) with the kept body trimmed.
    gamevms.annotate("kept", "gamevm.dev/power-request=stop")
    gamevms.wait_phase("kept", "stopped")
    time.sleep(2)  # the last watch events are handled

    operator.process.process.signal(signal.SIGUSR1)
    deadline = time.monotonic() + 30
    while not report.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    held = [body for body in json.loads(report.read_text()) if body["name"] == "kept"]
    assert held, "the operator holds the GameVM's body (kopf's live body)"
    for body in held:
        assert "managedFields" not in body["metadata"], body
        assert LAST_APPLIED not in body["annotations"], body


def _namespaced_gamevm_lists(kubectl: Kubectl) -> int:
    samples = parse_request_totals(kubectl("get", "--raw", "/metrics").stdout)
    return int(
        sum(
            value
            for labels, value in samples.items()
            if dict(labels).get("verb") == "LIST"
            and dict(labels).get("resource") == "gamevms"
            and dict(labels).get("scope") == "namespace"
        )
    )


def test_the_initial_list_comes_in_pages(
    kubectl: Kubectl,
    operator_starter: Callable[..., OperatorUnderTest],
    namespace: str,
    gamevms: GameVMs,
) -> None:
    """kopf lists what exists before it watches; in pages of GAMEVM_WATCH_LIST_CHUNK_SIZE
    (each page one LIST request at the API server), the start-up never holds every
    object's JSON at once (bench/README.md, memory: the start-up peak)."""
    for index in range(5):
        name = f"paged-{index}"
        gamevms.apply(name)
        # Paused: the operator lists them and does nothing else (no provisioning).
        gamevms.annotate(name, "gamevm.dev/paused=true")
    before = _namespaced_gamevm_lists(kubectl)
    operator = operator_starter(
        {
            "GAMEVM_WATCH_NAMESPACES": json.dumps([namespace]),
            "GAMEVM_WATCH_LIST_CHUNK_SIZE": "2",
        },
    )
    # Every VM is seen (the pages were followed to the end): each reports its pause.
    for index in range(5):
        gamevms.wait(
            f"paged-{index}",
            lambda status: any(
                c.get("reason") == "ReconcilePaused" for c in status.get("conditions", [])
            ),
            what="the pause reported",
        )
    assert operator.process.running()
    # 5 objects in pages of 2: three LIST requests (one without paging).
    assert _namespaced_gamevm_lists(kubectl) - before >= 3
