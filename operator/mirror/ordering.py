"""The order of changes: when the operator received them, never the resourceVersion.

Kubernetes documents ``metadata.resourceVersion`` as opaque: clients may compare two
values for equality only. What is ordered is the watch: it delivers each object's
changes oldest first. So every change gets a stamp when it is handed to the mirror, and a
stored document records the stamp it was written with (``mirror_seq``). A write matches
only a document with a lower stamp, so a change can never overwrite one delivered later.

A stamp is microseconds since the epoch, bumped so stamps of one process strictly
increase. A resync takes its stamp *before* it lists: an event delivered before the LIST
request is older than the listing (the API server answers a LIST with a consistent read)
and loses to it; an event delivered after the request may be older than the listing, but
then the watch delivers the newer state right after it, so the document converges.
Across restarts the stamps keep increasing with the wall clock (one replica, Recreate:
the old process is gone before the new one starts).
"""

import time
from typing import Final

SEQ_FIELD: Final = "mirror_seq"
"""The stored field holding a document's stamp (the mirror's bookkeeping, not the seed's)."""


class DeliveryClock:
    """Strictly increasing stamps that follow the wall clock."""

    def __init__(self) -> None:
        self._last = 0

    def stamp(self) -> int:
        """A stamp above every earlier one of this clock."""
        self._last = max(time.time_ns() // 1000, self._last + 1)
        return self._last


def stored_seq(stored: object) -> int:
    """The stamp a stored document was written with; 0 for documents written before stamps."""
    value = stored.get(SEQ_FIELD, 0) if isinstance(stored, dict) else 0
    return value if isinstance(value, int) else 0


def not_newer_than(seq: int) -> dict[str, object]:
    """Filter: the stored stamp is below ``seq`` (or absent: documents of older versions)."""
    return {SEQ_FIELD: {"$not": {"$gte": seq}}}
