"""Wolf's Moonlight HTTP `/serverinfo`: liveness and the BUSY/FREE "in use" signal.

The VM answering here is not trusted: the probe connects only to the literal address the
provider reported for the instance (after `addresses.probe_target` refused loopback,
link-local, private and metadata addresses), never follows a redirect, reads a bounded
body and parses it with defusedxml (no entities, no external references).
"""

from dataclasses import dataclass

import aiohttp
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from gamevm.providers.addresses import probe_target

BUSY_STATE = "SUNSHINE_SERVER_BUSY"
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class WolfStatus:
    """What /serverinfo says."""

    busy: bool
    state: str
    hostname: str | None = None
    current_game: str | None = None


def parse_serverinfo(text: str) -> WolfStatus | None:
    """Parse the XML; None when it is not Wolf's shape."""
    try:
        root = SafeET.fromstring(text)
    except (SafeET.ParseError, DefusedXmlException):
        return None
    state = (root.findtext("state") or "").strip()
    if not state:
        return None
    return WolfStatus(
        busy=state == BUSY_STATE,
        state=state,
        hostname=root.findtext("hostname"),
        current_game=root.findtext("currentgame"),
    )


class HttpWolfProbe:
    """Probes `http://host:port/serverinfo` with one shared session and a short timeout."""

    def __init__(self, timeout: float, *, allow_loopback: bool = False) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=timeout)
        self._allow_loopback = allow_loopback
        self._session: aiohttp.ClientSession | None = None

    async def probe(self, host: str, port: int) -> WolfStatus | None:
        """Wolf's status, or None when it does not answer.

        Raises UnsafeAddressError (before any connection) when the address is refused.
        """
        target = probe_target(host, port, allow_loopback=self._allow_loopback)
        if self._session is None:
            # trust_env=False: no proxy from the environment may relay the probe elsewhere.
            # force_close: a VM is probed seconds apart at most while it comes up, then
            # minutes apart; a kept connection per VM (aiohttp keeps one 15 s) is a file
            # descriptor and buffers for each of a thousand VMs that came up together.
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                trust_env=False,
                connector=aiohttp.TCPConnector(force_close=True),
            )
        url = f"http://{target.url_host}:{target.port}/serverinfo"
        try:
            # A redirect would point the operator at an address nobody validated.
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    return None
                body = await response.content.read(MAX_BODY_BYTES)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None
        return parse_serverinfo(body.decode(errors="replace"))

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
