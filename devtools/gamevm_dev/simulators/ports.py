"""Loopback port helpers shared by the simulators."""

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port the kernel just reported free on `host` (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port (CloudyPad's `nc -z`)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Wolf/SSH port numbers, kept here rather than imported from gamevm.models.names: importing
# that pulls pydantic into every short-lived `cloudypad-sim` run (~120 ms). A unit test
# keeps the two in step.
WOLF_HTTP_PORT = 47989
SSH_PORT = 22
