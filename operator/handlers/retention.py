"""What of a GameVM's body this process keeps between watch events.

kopf keeps the latest body of every object it watches (a daemon's live body) for as long
as the object exists. Two parts of a GameVM's body are never read once its watch event
has been handled, and are over half its size: `metadata.managedFields` (the API server's
per-writer field ownership) and kubectl's last-applied-configuration annotation (the whole
spec again, as JSON text). At 10,000 GameVMs that is about 70 MB (bench/README.md,
memory). kopf has no hook to filter what it keeps, but it keeps the very dict of the watch
event it gives the on-event handler, so the handler drops them from it, after the mirror
has read the write times it takes from managedFields.

Each watch event is decoded on its own, so every held body has its own copy of every key
("lastTransitionTime", "observedGeneration", ...) and of every short value ("True",
"running", ...): sharing one copy of each halves what is left of a body (11 -> 5 KB of
Python objects for a running VM's).
"""

import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SHED_ANNOTATIONS = frozenset({LAST_APPLIED})
"""Annotations dropped from held bodies (and so never compared to wake a daemon)."""

SHARED_VALUE_MAX = 24
"""String values up to this length are shared (phases, reasons, "True"); longer ones
(uids, times, messages) are seldom equal across objects."""


def compact_held_body(raw_body: MutableMapping[str, Any]) -> None:
    """What the on-event handler does to the body kopf goes on holding: drop the unread
    fields, share the strings."""
    shed_unread_fields(raw_body)
    share_strings(raw_body)


def shed_unread_fields(raw_body: MutableMapping[str, Any]) -> None:
    """Drop managedFields and the last-applied annotation from a watch event's body, in
    place (the body kopf holds on to)."""
    metadata = raw_body.get("metadata")
    if not isinstance(metadata, MutableMapping):
        return
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if isinstance(annotations, MutableMapping):
        for key in SHED_ANNOTATIONS:
            annotations.pop(key, None)


def acted_on_annotations(annotations: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The annotations a daemon acts on (a change wakes it), in a comparable form."""
    return tuple(sorted((k, v) for k, v in annotations.items() if k not in SHED_ANNOTATIONS))


def share_strings(value: Any) -> Any:
    """`value` with its dict keys and short string values replaced by one shared copy
    each (sys.intern), in place for dicts and lists; returns it."""
    if isinstance(value, dict):
        items = [(sys.intern(key), share_strings(item)) for key, item in value.items()]
        # Same dict object (kopf's views keep it), same order, shared keys.
        value.clear()
        value.update(items)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = share_strings(item)
    elif isinstance(value, str) and len(value) <= SHARED_VALUE_MAX:
        return sys.intern(value)
    return value
