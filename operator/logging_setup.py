"""Log output of the operator: text or JSON lines, object reference on every line, secrets masked.

`configure_logging("json")` installs one stderr handler on the root logger.
Every record gets `namespace` and `name` when it concerns one object, taken
from (first match wins):

1. kopf's per-object logger (`kopf.ObjectLogger` sets `record.k8s_ref`);
2. `extra={"namespace": ..., "object_name": ...}` at the call site (`name` is
   taken by LogRecord itself);
3. `object_context(namespace, name)`, a context variable for code below the
   handlers (services, providers, mirror) that logs with a plain logger: each
   kopf handler runs in its own task, so the binding never leaks across objects.

Redaction rewrites the records themselves when they are created (a log record
factory), not only our output, so kopf's Event poster, which turns object log
lines into Kubernetes Events, never sees a token or key either.
"""

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

MASK: Final = "***"

# Each pattern keeps a harmless prefix (group 1) and masks the rest of the match.
_PEM_PRIVATE_KEY = re.compile(
    r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)",
    re.DOTALL,
)
_AUTH_HEADER = re.compile(
    r"((?:authorization|x-api-key|api-key)[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:bearer|basic|token)\s+)?[^\s\"',;}]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(bearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_JWT = re.compile(r"()\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_URI_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^\s/:@]+:)[^\s@/]+(?=@)", re.IGNORECASE)
_SECRET_ASSIGNMENT = re.compile(
    r"((?:token|api[_-]?key|secret(?:[_-]?key)?|password|passwd|access[_-]?key|private[_-]?key"
    r"|master[_-]?key|credentials?)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+",
    re.IGNORECASE,
)
_PATTERNS: Final = (
    _PEM_PRIVATE_KEY,
    _AUTH_HEADER,
    _BEARER,
    _JWT,
    _URI_PASSWORD,
    _SECRET_ASSIGNMENT,
)


def redact(text: str) -> str:
    """Mask anything that looks like a bearer token, PEM private key, JWT,
    password in a URI, or `token=`/`password:`-style assignment."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


_OBJECT: contextvars.ContextVar[tuple[str | None, str] | None] = contextvars.ContextVar(
    "gamevm_log_object", default=None
)


@contextmanager
def object_context(namespace: str | None, name: str) -> Iterator[None]:
    """Tag every log record in this block (and the tasks it starts) with the object."""
    token = _OBJECT.set((namespace, name))
    try:
        yield
    finally:
        _OBJECT.reset(token)


class RedactingFilter(logging.Filter):
    """Rewrites the record's message and traceback with secrets masked.

    The message is rendered once (`msg % args`) and the args dropped, so no
    formatter or handler downstream can render the unmasked values again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_gamevm_redacted", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, "_gamevm_redacted", True)  # noqa: B010 (LogRecord has no such field)
        return True


class QuietHandlerSuccess(logging.Filter):
    """Drops kopf's "Handler '<id>' succeeded." lines of the named handlers.

    kopf logs that line at INFO for every handler call; for the on-event handlers it is
    one line per watch event per object (thousands a minute at scale, each formatted,
    masked and written), saying nothing a failure line would not.
    """

    def __init__(self, handler_ids: Iterable[str]) -> None:
        super().__init__()
        self._messages = frozenset(f"Handler {hid!r} succeeded." for hid in handler_ids)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.INFO or record.getMessage() not in self._messages


def quiet_handler_success(handler_ids: Iterable[str]) -> None:
    """Install `QuietHandlerSuccess` on kopf's per-object logger (idempotent)."""
    logger = logging.getLogger("kopf.objects")
    logger.filters[:] = [f for f in logger.filters if not isinstance(f, QuietHandlerSuccess)]
    logger.addFilter(QuietHandlerSuccess(handler_ids))


def object_of(record: logging.LogRecord) -> tuple[str | None, str | None]:
    """The (namespace, name) a record is about, or (None, None)."""
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, dict) and ref.get("name"):
        return ref.get("namespace"), ref.get("name")
    # `name` is a reserved LogRecord attribute (the logger's name), so call sites
    # pass the object's name as `extra={"object_name": ...}`.
    extra_name = getattr(record, "object_name", None)
    if isinstance(extra_name, str):
        extra_namespace = getattr(record, "namespace", None)
        return (extra_namespace if isinstance(extra_namespace, str) else None), extra_name
    bound = _OBJECT.get()
    if bound is not None:
        return bound
    return None, None


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, namespace, name, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        namespace, name = object_of(record)
        if namespace:
            entry["namespace"] = namespace
        if name:
            entry["name"] = name
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # Masked again per field (not on the encoded line, which a mask could
        # cut mid-string) in case a record bypassed the record factory.
        return json.dumps({key: redact(value) for key, value in entry.items()}, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> [namespace/name] message`."""

    def format(self, record: logging.LogRecord) -> str:
        namespace, name = object_of(record)
        prefix = ""
        if name:
            prefix = f"[{namespace}/{name}] " if namespace else f"[{name}] "
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name} {prefix}"
        line += record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return redact(line)


class _GameVMStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker class, so re-configuring replaces our handler and no one else's."""


# Loggers that would print request/response bodies or headers (Secrets data,
# Authorization) at DEBUG: capped at INFO whatever the operator's level.
_CHATTY_LOGGERS: Final = ("kubernetes", "urllib3", "aiohttp.client", "pymongo")

LOG_FORMATS: Final = ("text", "json")


def configure_logging(fmt: str = "text", *, level: int | str = logging.INFO) -> None:
    """Install the operator's log handler on the root logger (idempotent).

    `fmt` is "text" or "json" (settings.log_format). Call it once at start-up,
    before kopf runs; do not also call kopf's own `configure()`.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, not {fmt!r}")
    handler = _GameVMStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())

    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _GameVMStreamHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    _install_redacting_record_factory()

    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


def _install_redacting_record_factory() -> None:
    """Mask every record when it is created, before any handler sees it: handler
    filters only guard their own handler, and kopf's Event poster (a handler on
    `kopf.objects`) or any other handler would otherwise get the raw text."""
    current = logging.getLogRecordFactory()
    if getattr(current, "gamevm_redacting", False):
        return
    redactor = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        redactor.filter(record)
        return record

    factory.gamevm_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
