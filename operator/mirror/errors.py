"""Which MongoDB failures are worth retrying (the server is away) and which are final."""

from typing import Final

from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

# Server-side codes that mean "not now" rather than "never": shutdown, step-down, no primary.
_RETRYABLE_CODES: Final = frozenset(
    {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)


class MirrorUnavailableError(RuntimeError):
    """MongoDB did not answer a read in time."""


def is_retryable(exc: BaseException) -> bool:
    """True when the same write may succeed later (connection lost, server restarting)."""
    if isinstance(exc, ConnectionFailure):
        return True
    if isinstance(exc, OperationFailure):
        return exc.code in _RETRYABLE_CODES or exc.has_error_label("RetryableWriteError")
    return isinstance(exc, PyMongoError) and exc.has_error_label("RetryableWriteError")
