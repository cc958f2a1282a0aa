"""The bad-input catalogue (tests/e2e/bad_input/) without a server.

- Every case file is well-formed and each GameVM case has its own name (the e2e test
  applies them concurrently into one namespace).
- Every case is its valid object (or its set-up) broken in ONE place, at the field the
  server must name: a case cannot pass by being rejected for another reason.
- The pydantic spec models reject the same spec-level cases, at the same field (strict
  JSON mode, as the API server types them), and accept the valid objects: the CRDs are
  generated from the models, so a disagreement is a bug in one of the two.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from gamevm.models.emulator_config import EmulatorConfigSpec
from gamevm.models.gamevm import GameVMSpec
from tests.e2e.bad_input.catalog import BadManifest, load_all, valid_manifest

CASES = load_all()
SPEC_MODELS: dict[str, type[BaseModel]] = {
    "GameVM": GameVMSpec,
    "EmulatorConfig": EmulatorConfigSpec,
}
_MISSING = object()


def _ids(cases: list[BadManifest]) -> list[str]:
    return [c.id for c in cases]


def changed_paths(before: Any, after: Any, path: str = "") -> set[str]:
    """Field paths (API server notation: `a.b[0].c`) where two documents differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        paths: set[str] = set()
        for key in before.keys() | after.keys():
            child = f"{path}.{key}" if path else str(key)
            paths |= changed_paths(before.get(key, _MISSING), after.get(key, _MISSING), child)
        return paths
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        paths = set()
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            paths |= changed_paths(old, new, f"{path}[{index}]")
        return paths
    return set() if before == after else {path}


def _within(path: str, field: str) -> bool:
    """`path` is the field itself, inside it, or a parent the field lives in."""
    return (
        path == field
        or path.startswith((f"{field}.", f"{field}["))
        or field.startswith((f"{path}.", f"{path}["))
    )


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def test_catalogue_size_and_kinds() -> None:
    assert len(CASES) >= 40, len(CASES)
    assert {c.kind for c in CASES} == {"GameVM", "EmulatorConfig"}
    assert len(set(_ids(CASES))) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_case_is_well_formed(case: BadManifest) -> None:
    assert case.why, "say what is wrong in a '# why:' line"
    assert case.field, "name the field in an '# expect:' line"
    assert case.doc["apiVersion"] == "gamevm.dev/v1alpha1"
    assert case.path.name.startswith(f"{case.kind.lower()}-"), "file name starts with the kind"
    for setup in case.setup_docs:
        assert setup["kind"] == case.kind
        assert setup["metadata"]["name"] == case.name, "set-up creates the object updated"


def test_gamevm_cases_have_distinct_names() -> None:
    names = [c.name for c in CASES if c.kind == "GameVM"]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_case_breaks_only_the_expected_field(case: BadManifest) -> None:
    base = case.setup_docs[-1] if case.setup else valid_manifest(case.kind)
    changed = changed_paths(base, case.doc)
    if case.field != "metadata.name":
        changed.discard("metadata.name")  # GameVM cases are named after themselves
    assert changed, "the case equals its valid object"
    stray = {p for p in changed if not _within(p, case.field)}
    assert not stray, f"also changed outside {case.field}: {sorted(stray)}"


@pytest.mark.parametrize("kind", sorted(SPEC_MODELS))
def test_valid_objects_pass_the_models(kind: str) -> None:
    spec = valid_manifest(kind)["spec"]
    SPEC_MODELS[kind].model_validate_json(json.dumps(spec), strict=True)


SPEC_CASES = [c for c in CASES if c.field.startswith("spec.") and not c.setup]


@pytest.mark.parametrize("case", SPEC_CASES, ids=_ids(SPEC_CASES))
def test_models_reject_the_same_spec(case: BadManifest) -> None:
    model = SPEC_MODELS[case.kind]
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(json.dumps(case.doc["spec"]), strict=True)
    paths = [_loc_path(error["loc"]) for error in caught.value.errors()]
    assert any(_within(p, case.field) for p in paths), f"{case.field} not in {paths}"


def test_changed_paths_notation() -> None:
    before = {"spec": {"a": [{"b": 1}], "c": 2}}
    after = {"spec": {"a": [{"b": 2}], "d": 3}}
    assert changed_paths(before, after) == {"spec.a[0].b", "spec.c", "spec.d"}
