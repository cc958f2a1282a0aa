"""Log lines: JSON shape, the object's namespace/name on each line, secrets masked."""

import json
import logging
from collections.abc import Iterator

import kopf
import pytest

from gamevm.logging_setup import (
    MASK,
    RedactingFilter,
    configure_logging,
    object_context,
    quiet_handler_success,
    redact,
)

PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----"
)
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlLXZhbHVl"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    factory = logging.getLogRecordFactory()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)


def json_lines(err: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def gamevm_logger(namespace: str, name: str) -> kopf.ObjectLogger:
    """kopf's own per-object logger, as handlers receive it."""
    body = kopf.Body(
        {
            "apiVersion": "gamevm.dev/v1alpha1",
            "kind": "GameVM",
            "metadata": {"namespace": namespace, "name": name, "uid": "u-1"},
        }
    )
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # no event loop here to post Events from
    return kopf.ObjectLogger(body=body, settings=settings)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET /v2/instances Authorization: Bearer sk_live_abcdef123456", "sk_live_abcdef123456"),
        ("headers={'Authorization': 'Bearer abc.def-ghi'}", "abc.def-ghi"),
        (f"key material {PEM} end", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUA"),
        ("truncated -----BEGIN RSA PRIVATE KEY-----\nMIIEow", "MIIEow"),
        (f"service account token {JWT}", JWT),
        ("mongodb://gamevm:hunter2@mongo:27017/gamevm", "hunter2"),
        ("token=abcd1234 api_key: 'zzz999' password=pw0rd", "abcd1234"),
        ("token=abcd1234 api_key: 'zzz999' password=pw0rd", "zzz999"),
        ("token=abcd1234 api_key: 'zzz999' password=pw0rd", "pw0rd"),
        ('{"heartbeatToken": "tok-42", "x": 1}', "tok-42"),
        ("env SCW_SECRET_KEY=scw-s3cret AZURE_CLIENT_SECRET=az-s3cret", "scw-s3cret"),
        ("env SCW_SECRET_KEY=scw-s3cret AZURE_CLIENT_SECRET=az-s3cret", "az-s3cret"),
        ("AWS_SECRET_ACCESS_KEY=aws/s3cret+x", "aws/s3cret+x"),
        ("{'access-master-key': 'm4ster'}", "m4ster"),
    ],
)
def test_redact_masks_secrets(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert MASK in masked


def test_redact_keeps_ordinary_text() -> None:
    text = "GameVM default/mario phase running at 10.0.0.4:47989 via tensordock"
    assert redact(text) == text
    assert redact("Secret gamevm-provider-credentials not found") == (
        "Secret gamevm-provider-credentials not found"
    )


def test_json_lines_carry_kopf_object_reference(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    gamevm_logger("players", "mario-kart").info("provider %s chosen", "tensordock")
    logging.getLogger("gamevm.services").warning("plain line")

    first, second = json_lines(capsys.readouterr().err)
    assert first["message"] == "provider tensordock chosen"
    assert first["namespace"] == "players"
    assert first["name"] == "mario-kart"
    assert first["level"] == "info"
    assert first["logger"] == "kopf.objects"
    assert first["time"].endswith("Z")
    assert "namespace" not in second
    assert second["level"] == "warning"


def test_object_context_and_extra_tag_plain_loggers(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    log = logging.getLogger("gamevm.services.autostop")
    with object_context("players", "zelda"):
        log.info("idle for %d s", 900)
    log.info("heartbeat", extra={"namespace": "ns2", "object_name": "metroid"})

    bound, extra = json_lines(capsys.readouterr().err)
    assert (bound["namespace"], bound["name"], bound["message"]) == (
        "players",
        "zelda",
        "idle for 900 s",
    )
    assert (extra["namespace"], extra["name"]) == ("ns2", "metroid")


def test_json_masks_secrets_in_messages_and_tracebacks(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    log = logging.getLogger("gamevm.providers.tensordock")
    log.error("call failed with Authorization: Bearer %s", "tok_SECRET_1")
    try:
        raise RuntimeError(f"bad key {PEM}")
    except RuntimeError:
        log.exception("create failed")

    err = capsys.readouterr().err
    assert "tok_SECRET_1" not in err
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUA" not in err
    failed, crashed = json_lines(err)
    assert failed["message"] == f"call failed with Authorization: {MASK}"
    assert "RuntimeError" in crashed["exception"]


def test_text_format_prefixes_the_object(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("text")
    gamevm_logger("players", "pokemon").info("running")
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO    kopf.objects [players/pokemon] running")


def test_records_reaching_kopf_event_poster_are_masked(restore_logging: None) -> None:
    """kopf turns object log lines into Events from the `kopf.objects` logger."""
    configure_logging("json")
    seen: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    objects = logging.getLogger("kopf.objects")
    capture = Capture()
    objects.addHandler(capture)
    try:
        gamevm_logger("players", "kirby").warning("token=%s", "s3cr3t")
    finally:
        objects.removeHandler(capture)
    assert seen == [f"token={MASK}"]


def test_configure_is_idempotent_and_rejects_unknown_formats(restore_logging: None) -> None:
    configure_logging("json")
    configure_logging("text")
    ours = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactingFilter) for f in h.filters)
    ]
    assert len(ours) == 1
    with pytest.raises(ValueError, match="log format"):
        configure_logging("yaml")


def test_bad_format_string_does_not_lose_the_line() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items", ("many",), None)
    assert RedactingFilter().filter(record)
    assert "many" in record.getMessage()


def test_on_event_handler_success_lines_are_dropped(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json")
    objects = logging.getLogger("kopf.objects")
    filters = objects.filters[:]
    try:
        quiet_handler_success(["gamevm_event"])
        quiet_handler_success(["gamevm_event"])  # idempotent: one filter
        logger = gamevm_logger("players", "mario-kart")
        logger.info("Handler 'gamevm_event' succeeded.")
        logger.info("Handler 'delete_gamevm' succeeded.")
        logger.error("Handler 'gamevm_event' failed with an exception. Will retry.")
    finally:
        objects.filters[:] = filters

    lines = [entry["message"] for entry in json_lines(capsys.readouterr().err)]
    assert lines == [
        "Handler 'delete_gamevm' succeeded.",
        "Handler 'gamevm_event' failed with an exception. Will retry.",
    ]
