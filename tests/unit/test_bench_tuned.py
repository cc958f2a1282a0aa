"""bench/tuned_operator.py (the proposed diff-base storage) and bench/floor_operator.py."""

import kopf

from bench.tuned_operator import SpecOnlyDiffBase


def _body(phase: str, annotations: dict[str, str] | None = None) -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "gamevm.dev/v1alpha1",
            "kind": "GameVM",
            "metadata": {"name": "a", "namespace": "ns", "annotations": annotations or {}},
            "spec": {"consoleType": "nes", "userLocation": {"latitude": 1.0}},
            "status": {"phase": phase, "decision": {"candidates": [{"x": 1}] * 20}},
        }
    )


def test_essence_ignores_status_and_is_a_copy() -> None:
    storage = SpecOnlyDiffBase()
    body = _body("creating")
    essence = storage.build(body=body)
    assert essence == {
        "spec": {"consoleType": "nes", "userLocation": {"latitude": 1.0}},
        "metadata": {"annotations": {}},
    }
    assert storage.build(body=_body("running")) == essence
    essence["spec"]["userLocation"]["latitude"] = 2.0  # type: ignore[index]
    assert body["spec"]["userLocation"]["latitude"] == 1.0


def test_fetch_equals_build_and_store_writes_nothing() -> None:
    storage = SpecOnlyDiffBase()
    body = _body("running", {"gamevm.dev/power-request": "stop"})
    assert storage.fetch(body=body) == storage.build(body=body)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch


def test_floor_marks_running_once() -> None:
    from bench.floor_operator import mark_running

    patch = kopf.Patch()
    mark_running(status=kopf.Status({}), patch=patch, type="ADDED")
    assert patch == {"status": {"phase": "running"}}
    for status, kind in (({"phase": "running"}, "MODIFIED"), ({}, "DELETED")):
        untouched = kopf.Patch()
        mark_running(status=kopf.Status(status), patch=untouched, type=kind)
        assert not untouched
