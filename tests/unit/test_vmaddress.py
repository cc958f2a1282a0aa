"""The address a VM's configuration report speaks for (gamevm.services.vmaddress)."""

import pytest

from gamevm.services.vmaddress import client_address, report_address, trusted_networks

PROXY = trusted_networks(["10.0.0.0/8"])


def test_the_peer_is_the_client_unless_it_is_a_declared_proxy() -> None:
    assert client_address("203.0.113.5", [], ()) == "203.0.113.5"
    # A header from a peer nobody declared proves nothing.
    assert client_address("203.0.113.5", ["198.51.100.1"], ()) == "203.0.113.5"
    assert client_address("203.0.113.5", ["198.51.100.1"], PROXY) == "203.0.113.5"
    # Behind the declared proxy: the entry it appended (the rightmost).
    assert client_address("10.1.2.3", ["198.51.100.1"], PROXY) == "198.51.100.1"


def test_forwarded_for_is_read_right_to_left_past_trusted_hops_only() -> None:
    # The client wrote "192.0.2.66" itself; the proxies appended the real hops.
    forwarded = ["192.0.2.66, 198.51.100.1", "10.9.9.9"]
    assert client_address("10.1.2.3", forwarded, PROXY) == "198.51.100.1"
    # A proxy that names no client: nobody.
    assert client_address("10.1.2.3", [], PROXY) is None
    assert client_address("10.1.2.3", ["10.4.4.4"], PROXY) is None


@pytest.mark.parametrize(
    ("peer", "allow_loopback", "expected"),
    [
        ("8.8.4.4", False, "8.8.4.4"),
        ("::ffff:8.8.4.4", False, "8.8.4.4"),
        ("2001:db8::1", False, None),  # documentation range: not global
        ("10.0.0.7", False, None),  # private: NAT or an undeclared proxy
        ("192.168.1.1", True, None),
        ("169.254.169.254", True, None),  # metadata service
        ("127.0.0.1", False, None),
        ("127.64.3.4", True, "127.64.3.4"),  # the local stack's simulated VMs
        ("::1", True, "::1"),
        ("not-an-address", True, None),
        (None, True, None),
    ],
)
def test_only_addresses_the_probe_may_reach_are_kept(
    peer: str | None, allow_loopback: bool, expected: str | None
) -> None:
    assert report_address(peer, [], (), allow_loopback=allow_loopback) == expected


def test_a_trusted_proxy_cannot_smuggle_a_private_address() -> None:
    assert report_address("10.1.2.3", ["192.168.0.9"], PROXY, allow_loopback=False) is None
    assert report_address("10.1.2.3", ["1.1.1.1"], PROXY, allow_loopback=False) == "1.1.1.1"
