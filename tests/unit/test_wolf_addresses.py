"""The Wolf probe's address guard and hardened XML parsing (pure logic)."""

import pytest

from gamevm.providers.addresses import UnsafeAddressError, probe_target
from gamevm.providers.wolf import parse_serverinfo

REFUSED = {
    "10.0.0.7": "private",
    "172.16.3.4": "private",
    "192.168.1.10": "private",
    "fd12:3456::1": "private",
    "169.254.169.254": "metadata",
    "169.254.10.1": "link-local",
    "fe80::1": "link-local",
    "fd00:ec2::254": "metadata",
    "100.100.100.200": "metadata",
    "100.64.1.1": "not a public",
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "::ffff:10.1.2.3": "private",
    "0.0.0.0": "address",  # noqa: S104 (a refused target, not a bind)
    "224.0.0.1": "not a public",
    "metadata.google.internal": "not an IP address",
    "example.com": "not an IP address",
    "": "no address",
}


@pytest.mark.parametrize(("host", "why"), sorted(REFUSED.items()))
def test_non_public_addresses_are_refused(host: str, why: str) -> None:
    with pytest.raises(UnsafeAddressError, match=why):
        probe_target(host, 47989, allow_loopback=False)


@pytest.mark.parametrize("host", ["169.254.169.254", "10.0.0.1", "fe80::1", "192.168.0.1"])
def test_the_loopback_setting_allows_loopback_only(host: str) -> None:
    assert str(probe_target("127.0.0.1", 1, allow_loopback=True).address) == "127.0.0.1"
    with pytest.raises(UnsafeAddressError):
        probe_target(host, 47989, allow_loopback=True)


@pytest.mark.parametrize("port", [0, -1, 65536, 100000, "47989", True, None])
def test_ports_out_of_range_are_refused(port: object) -> None:
    with pytest.raises(UnsafeAddressError, match="port"):
        probe_target("8.8.8.8", port, allow_loopback=False)


def test_public_addresses_pass() -> None:
    assert probe_target("8.8.8.8", 47989, allow_loopback=False).url_host == "8.8.8.8"
    v6 = probe_target("2001:4860:4860::8888", 443, allow_loopback=False)
    assert v6.url_host == "[2001:4860:4860::8888]"
    assert v6.port == 443


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<root><state>&lol3;</state></root>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE root [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<root><state>&x;</state></root>"""


def test_xml_entities_are_refused() -> None:
    assert parse_serverinfo(BILLION_LAUGHS) is None
    assert parse_serverinfo(EXTERNAL_ENTITY) is None
    ok = parse_serverinfo("<root><state>SUNSHINE_SERVER_BUSY</state></root>")
    assert ok is not None
    assert ok.busy
