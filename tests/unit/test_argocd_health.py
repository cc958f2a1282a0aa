"""The Argo CD health check for GameVM, run in Lua 5.1 (the dialect of Argo CD's gopher-lua)."""

import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "argocd" / "gamevm-health.lua"
DOC = ROOT / "docs" / "argocd-health.md"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    try:
        from lupa import lua51  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        pytest.fail("lupa not installed: `make install` or `.venv/bin/pip install lupa==2.8`")
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT.read_text())
    return str(result["status"]), str(result["message"])


def gamevm(
    phase: str | None = None,
    ready: str | None = None,
    message: str = "",
    annotations: dict[str, str] | None = None,
    generation: int = 1,
    observed: int | None = 1,
    **status: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "gamevm.dev/v1alpha1",
        "kind": "GameVM",
        "metadata": {"name": "mario", "namespace": "players", "generation": generation},
    }
    if annotations:
        obj["metadata"]["annotations"] = annotations
    if phase is not None:
        obj["status"] = {"phase": phase, **status}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
        if ready is not None:
            obj["status"]["conditions"] = [
                {"type": "Provisioned", "status": "True", "reason": "InstanceCreated"},
                {"type": "Ready", "status": ready, "reason": "Why", "message": message},
            ]
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (gamevm(), "Progressing"),
        (gamevm("creating", "False"), "Progressing"),
        (gamevm("configuring", "False"), "Progressing"),
        (gamevm("running", "False"), "Progressing"),
        (gamevm("running", "True"), "Healthy"),
        (gamevm("error", "False", "no provider has capacity"), "Degraded"),
        (gamevm("stopped", "False", stopReason="idle for 30 minutes"), "Suspended"),
        (gamevm("terminated", "False"), "Degraded"),
        (gamevm("running", "True", generation=3, observed=2), "Progressing"),
        (gamevm("running", "True", annotations={"gamevm.dev/paused": "true"}), "Suspended"),
        (gamevm("running", "True", annotations={"gamevm.dev/paused": "false"}), "Healthy"),
    ],
    ids=[
        "no-status",
        "creating",
        "configuring",
        "running-not-ready",
        "ready",
        "error",
        "stopped",
        "terminated",
        "stale-generation",
        "paused",
        "not-paused",
    ],
)
def test_health_status(obj: dict[str, Any], expected: str) -> None:
    assert health(obj)[0] == expected


def test_messages_explain_the_status() -> None:
    assert health(gamevm("error", "False", "all providers over budget"))[1] == (
        "all providers over budget"
    )
    assert health(gamevm("stopped", "False", stopReason="idle"))[1] == "Stopped: idle"
    assert health(gamevm("creating"))[1] == "Phase creating"
    assert "paused" in health(gamevm(annotations={"gamevm.dev/paused": "true"}))[1]


def test_doc_embeds_the_tested_script() -> None:
    assert textwrap.indent(SCRIPT.read_text(), "    ") in DOC.read_text()
    assert "resource.customizations.health.gamevm.dev_GameVM: |" in DOC.read_text()
