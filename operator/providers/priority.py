"""Which kind of provider call a request serves, so the shared budget can order waiters.

A context variable rather than a parameter: the budget layer (`gamevm.providers.budget`)
sets it around a call, and every HTTP request the adapter makes inside that call (also in
tasks it starts) is queued with it, without the adapters knowing.
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from enum import IntEnum


class Priority(IntEnum):
    """Lower is served first."""

    OBSERVE = 0
    """List and detail calls that every VM's state depends on."""
    ACT = 1
    """Start, stop, delete and offer listings: one VM or a placement waits on each."""
    CREATE = 2
    """Creates: the bulk of a burst; queued behind the rest so observation never starves."""


_PRIORITY: ContextVar[Priority] = ContextVar("gamevm_provider_priority", default=Priority.ACT)


def current_priority() -> int:
    """The priority of the call in progress (ACT when nobody set one)."""
    return int(_PRIORITY.get())


@contextlib.contextmanager
def request_priority(priority: Priority) -> Iterator[None]:
    """Requests sent inside this block queue with `priority`."""
    token = _PRIORITY.set(priority)
    try:
        yield
    finally:
        _PRIORITY.reset(token)
