"""A running VM's daemon keeps one status dict, not two equal ones (bench/README.md,
memory: ~8 KB of Python objects per VM)."""

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from gamevm.handlers.context import VMRuntime
from gamevm.handlers.gamevm import _write_status
from gamevm.handlers.kube import KubeError
from gamevm.services.ports import VMRef

REF = VMRef(namespace="ns", name="vm", uid="u-1", generation=1)


class FakeKube:
    def __init__(self, fail: bool = False) -> None:
        self.patches: list[dict[str, Any]] = []
        self.fail = fail

    async def patch_gamevm_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise KubeError(500, "500 Internal Server Error")
        self.patches.append(patch)


def app(kube: FakeKube) -> Any:
    return SimpleNamespace(kube=kube)


async def test_an_unchanged_status_is_not_written_and_kept_once() -> None:
    kube = FakeKube()
    runtime = VMRuntime(
        written_status={"phase": "running", "message": "running"},
        status={"phase": "running", "message": "running"},
    )
    await _write_status(app(kube), runtime, REF)
    assert kube.patches == []
    assert runtime.written_status is runtime.status


async def test_a_changed_status_is_patched_and_becomes_the_written_one() -> None:
    kube = FakeKube()
    runtime = VMRuntime(written_status={"phase": "configuring"}, status={"phase": "running"})
    await _write_status(app(kube), runtime, REF)
    assert kube.patches == [{"phase": "running"}]
    assert runtime.written_status is runtime.status


async def test_a_failed_write_keeps_the_old_written_status() -> None:
    kube = FakeKube(fail=True)
    runtime = VMRuntime(written_status={"phase": "configuring"}, status={"phase": "running"})
    with pytest.raises(KubeError):
        await _write_status(app(kube), runtime, REF)
    assert runtime.written_status == {"phase": "configuring"}
