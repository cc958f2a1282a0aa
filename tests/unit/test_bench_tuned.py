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
    essence["spec"]["userLocation"]["latitude"] = 2.0
    assert body["spec"]["userLocation"]["latitude"] == 1.0


def test_fetch_equals_build_and_store_writes_nothing() -> None:
    storage = SpecOnlyDiffBase()
    body = _body("running", {"gamevm.dev/power-request": "stop"})
    assert storage.fetch(body=body) == storage.build(body=body)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch


def test_floor_patches_each_object_until_it_runs() -> None:
    from bench.floor_operator import needs_running

    assert needs_running(None, "ADDED")
    assert needs_running("creating", "MODIFIED")
    assert not needs_running("running", "MODIFIED")
    assert not needs_running(None, "DELETED")
