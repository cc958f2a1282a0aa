"""The bad-input catalogue: invalid GameVM and EmulatorConfig manifests kept as data.

Every `*.yaml` in this folder is one case (its id is the file name without `.yaml`). A
case file starts with comment lines, then one or more YAML documents:

    # why: latitude above 90 degrees               (what is wrong, for humans)
    # expect: spec.userLocation.latitude            (the field path the API server must name)
    # also: Unsupported value                       (optional, repeatable: more text to find)

The LAST document is the invalid one. Any documents before it are set-up: they are
valid, applied first and must be accepted (e.g. create a GameVM, then change its
immutable consoleType). `valid/` holds the valid objects the cases are derived from:
each case differs from its valid object (or from its set-up) at the expected field only,
which `tests/unit/test_bad_input_catalog.py` checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
VALID_DIR = HERE / "valid"
_HEADER = re.compile(r"^#\s*(why|expect|also):\s?(.*)$")
_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)


@dataclass(frozen=True)
class BadManifest:
    """One invalid manifest and what the API server must say about it."""

    id: str
    path: Path
    why: str
    field: str
    """Field path the rejection must name, as the API server writes it."""
    also: tuple[str, ...]
    setup: tuple[str, ...]
    """YAML texts applied (and accepted) before `text`."""
    text: str
    """The invalid document, as YAML text sent to kubectl unchanged."""

    @property
    def doc(self) -> dict[str, Any]:
        """The invalid document, parsed."""
        return parse(self.text)

    @property
    def setup_docs(self) -> list[dict[str, Any]]:
        """The set-up documents, parsed."""
        return [parse(text) for text in self.setup]

    @property
    def kind(self) -> str:
        """GameVM or EmulatorConfig."""
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        """metadata.name of the invalid document."""
        return str(self.doc["metadata"]["name"])


def parse(text: str) -> dict[str, Any]:
    """One YAML document as a dict (fails loudly on anything else)."""
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise TypeError(f"not a YAML mapping: {text[:80]!r}")
    return doc


def load(path: Path) -> BadManifest:
    """Parse one case file."""
    text = path.read_text()
    headers: dict[str, list[str]] = {"why": [], "expect": [], "also": []}
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            headers[match.group(1)].append(match.group(2).strip())
    documents = [d for d in _SEPARATOR.split(text) if parse_or_none(d) is not None]
    if len(headers["expect"]) != 1 or not documents:
        raise ValueError(f"{path.name}: needs exactly one '# expect:' line and a document")
    return BadManifest(
        id=path.stem,
        path=path,
        why=" ".join(headers["why"]),
        field=headers["expect"][0],
        also=tuple(headers["also"]),
        setup=tuple(documents[:-1]),
        text=documents[-1],
    )


def parse_or_none(text: str) -> dict[str, Any] | None:
    """A document, or None for an empty chunk (comments only)."""
    doc = yaml.safe_load(text)
    return doc if isinstance(doc, dict) else None


def load_all() -> list[BadManifest]:
    """Every case, sorted by id."""
    return [load(path) for path in sorted(HERE.glob("*.yaml"))]


def valid_manifest(kind: str) -> dict[str, Any]:
    """The valid object of `kind` the cases are derived from."""
    name = {"GameVM": "gamevm.yaml", "EmulatorConfig": "emulatorconfig.yaml"}[kind]
    return parse((VALID_DIR / name).read_text())
