"""The address a VM's configuration report speaks for.

A TensorDock VM reports to the operator once, with its own bearer token, before it can be
`running`. The connection it reports over says where the VM is: with that address the
operator needs no per-instance provider look (TensorDock's instance list carries no IP,
and its 100 requests/min are worth more as creates). A VM can only speak for itself (the
token is derived from its uid), and only for the address it connects from: what it
writes in the body is never believed.
"""

import ipaddress
from collections.abc import Iterable, Sequence

from gamevm.models.names import WOLF_HTTP_PORT
from gamevm.providers.addresses import UnsafeAddressError, probe_target

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The proxies whose X-Forwarded-For is believed (settings.api_trusted_proxies)."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(text: str, trusted: Sequence[IPNetwork]) -> bool:
    address = _parse(text)
    return address is not None and any(address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> str | None:
    """Who sent the request: the peer, or, while the hop is a trusted proxy, the entry it
    appended to X-Forwarded-For (read right to left; entries left of the first untrusted
    hop were written by the client and prove nothing)."""
    hops = [part.strip() for header in forwarded_for for part in header.split(",")]
    current = peer
    while current is not None and _trusted(current, trusted):
        current = hops.pop() if hops else None
    return current


def report_address(
    peer: str | None,
    forwarded_for: Sequence[str],
    trusted: Sequence[IPNetwork],
    *,
    allow_loopback: bool,
) -> str | None:
    """The address to reach the reporting VM at, or None when it is not one the Wolf probe
    may connect to (a private, link-local or metadata address: a VM behind NAT or behind a
    proxy nobody declared). None makes the operator ask the provider instead."""
    client = client_address(peer, forwarded_for, trusted)
    if not client:
        return None
    try:
        target = probe_target(client, WOLF_HTTP_PORT, allow_loopback=allow_loopback)
    except UnsafeAddressError:
        return None
    return str(target.address)
