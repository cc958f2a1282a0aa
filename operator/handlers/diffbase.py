"""A kopf diff-base storage that stores nothing.

The operator has no create/update handlers (one daemon per GameVM reconciles, and the only
changing handler is on.delete), so kopf needs no "last handled configuration". The stock
annotation storage costs one extra patch per object and a deep copy of the whole body on
every watch event; this one reports "unchanged" from the spec and annotations alone.
"""

from collections.abc import Iterable
from typing import Any

import kopf


def _copied(value: Any) -> Any:
    """A copy of a JSON value (dicts, lists, scalars): what `copy.deepcopy` does for one,
    without its memo and dispatch (kopf builds the essence twice per watch event)."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Essence = spec + annotations, never persisted: kopf sees no change causes."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        """The object's essence: its spec and annotations."""
        spec = body.get("spec")
        annotations = body.get("metadata", {}).get("annotations")
        essence = {
            "spec": _copied(spec) if isinstance(spec, dict) else {},
            "metadata": {"annotations": dict(annotations) if isinstance(annotations, dict) else {}},
        }
        return essence  # type: ignore[return-value]

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        """The same as build: nothing has changed as far as kopf's causes are concerned."""
        return self.build(body=body)

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        """Nothing to store."""
