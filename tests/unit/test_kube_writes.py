"""Writes whose answer is unused: the response is read undecoded and its connection freed."""

from typing import Any

from gamevm.handlers.kube import _drained


class FakeResponse:
    def __init__(self) -> None:
        self.read_called = False
        self.released = False

    def read(self) -> bytes:
        self.read_called = True
        return b'{"kind": "GameVM"}'

    def release_conn(self) -> None:
        self.released = True


def test_a_drained_write_asks_for_no_decoding_and_frees_the_connection() -> None:
    response = FakeResponse()
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def write(*args: Any, **kwargs: Any) -> FakeResponse:
        calls.append((args, kwargs))
        return response

    assert _drained(write, "ns", "vm", {"status": {}}) is None
    assert calls == [(("ns", "vm", {"status": {}}), {"_preload_content": False})]
    assert response.read_called
    assert response.released
