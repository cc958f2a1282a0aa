"""Which provider-reported addresses the operator may connect to (the Wolf probe's guard).

Provider data is untrusted input: a compromised or buggy provider response (or a VM that
answers with a redirect) must not make the operator reach into the cluster, the node or a
cloud metadata service. Only literal, globally routable IP addresses pass; host names are
refused (resolving them would let DNS pick the target, and rebinding change it later).
"""

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MIN_PORT = 1
MAX_PORT = 65535

# Metadata services not covered by "not global" everywhere (all are listed for clarity).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IPv6
    )
)


class UnsafeAddressError(ValueError):
    """A provider-reported address or port the operator refuses to connect to."""


@dataclass(frozen=True)
class ProbeTarget:
    """A validated address and port: safe to connect to."""

    address: IPAddress
    port: int

    @property
    def url_host(self) -> str:
        """The host part of a URL (IPv6 in brackets)."""
        return f"[{self.address}]" if self.address.version == 6 else str(self.address)


def validate_port(port: object) -> int:
    """An int in 1..65535, or UnsafeAddressError."""
    if isinstance(port, bool) or not isinstance(port, int) or not MIN_PORT <= port <= MAX_PORT:
        raise UnsafeAddressError(f"port {port!r} is not in {MIN_PORT}..{MAX_PORT}")
    return port


def probe_target(host: str | None, port: object, *, allow_loopback: bool) -> ProbeTarget:
    """The target for a connection to a VM, or UnsafeAddressError saying why not.

    `allow_loopback` exists for the local stack and the tests only, where simulated VMs
    listen on 127.0.0.1; link-local, private and metadata addresses are always refused.
    """
    if not host:
        raise UnsafeAddressError("the provider reported no address")
    try:
        address: IPAddress = ipaddress.ip_address(host.strip())
    except ValueError:
        raise UnsafeAddressError(
            f"{host!r} is not an IP address (host names are not resolved)"
        ) from None
    port_checked = validate_port(port)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:10.0.0.1 reaches 10.0.0.1: judge the IPv4 address it maps to.
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        raise UnsafeAddressError(f"{address} is a cloud metadata address")
    if address.is_loopback:
        if allow_loopback:
            return ProbeTarget(address, port_checked)
        raise UnsafeAddressError(f"{address} is a loopback address")
    if address.is_link_local:
        raise UnsafeAddressError(f"{address} is a link-local address")
    if address.is_private:
        raise UnsafeAddressError(f"{address} is a private address")
    if not address.is_global or address.is_multicast:
        raise UnsafeAddressError(f"{address} is not a public unicast address")
    return ProbeTarget(address, port_checked)
