"""The Wolf /serverinfo responder, in-process over real HTTP on 127.0.0.1."""

import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import pytest

from gamevm_dev.simulators.wolf import WolfResponder, WolfState, parse_state, render_serverinfo


async def _serverinfo(port: int) -> ET.Element:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/serverinfo", params={"uniqueid": "x"}) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "application/xml"
        return ET.fromstring(await resp.text())  # noqa: S314 - our own loopback responder


def test_serverinfo_document_has_wolf_fields() -> None:
    root = ET.fromstring(render_serverinfo("vm<1>", "abc", WolfState.BUSY))  # noqa: S314
    assert root.tag == "root"
    assert root.attrib["status_code"] == "200"
    for tag in ("hostname", "uniqueid", "HttpsPort", "ExternalPort", "PairStatus", "currentgame"):
        assert root.find(tag) is not None, tag
    assert root.findtext("hostname") == "vm<1>"
    assert root.findtext("ExternalPort") == "47989"
    assert root.findtext("state") == "SUNSHINE_SERVER_BUSY"
    assert root.findtext("currentgame") == "1"


def test_parse_state_accepts_both_spellings() -> None:
    assert parse_state("BUSY") is WolfState.BUSY
    assert parse_state("sunshine_server_free") is WolfState.FREE
    with pytest.raises(ValueError, match="unknown Wolf state"):
        parse_state("idle")


async def test_state_switches_at_runtime_in_process_and_over_control_path() -> None:
    wolf = WolfResponder("vm-a")
    port = await wolf.start()
    try:
        assert (await _serverinfo(port)).findtext("state") == "SUNSHINE_SERVER_FREE"
        wolf.state = WolfState.BUSY
        assert (await _serverinfo(port)).findtext("state") == "SUNSHINE_SERVER_BUSY"
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/_sim/state", json={"state": "free"}) as resp,
        ):
            assert resp.status == 200
        root = await _serverinfo(port)
        assert root.findtext("state") == "SUNSHINE_SERVER_FREE"
        assert root.findtext("currentgame") == "0"
        assert wolf.requests == 3
    finally:
        await wolf.stop()


async def test_stopped_responder_refuses_connections() -> None:
    wolf = WolfResponder()
    port = await wolf.start()
    await wolf.stop()
    assert not wolf.running
    with pytest.raises(aiohttp.ClientConnectionError):
        await _serverinfo(port)


async def test_state_file_wins_and_is_reread_per_request(tmp_path: Path) -> None:
    state_file = tmp_path / "wolf-state"
    state_file.write_text("busy")
    wolf = WolfResponder(state_file=state_file)
    port = await wolf.start()
    try:
        assert (await _serverinfo(port)).findtext("state") == "SUNSHINE_SERVER_BUSY"
        state_file.write_text("free\n")
        assert (await _serverinfo(port)).findtext("state") == "SUNSHINE_SERVER_FREE"
    finally:
        await wolf.stop()


def test_simulator_port_constants_match_the_models() -> None:
    from gamevm.models import names
    from gamevm_dev.simulators import ports

    assert ports.WOLF_HTTP_PORT == names.WOLF_HTTP_PORT
    assert ports.SSH_PORT == names.SSH_PORT
