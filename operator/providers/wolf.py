"""Wolf's Moonlight HTTP `/serverinfo`: liveness and the BUSY/FREE "in use" signal."""

import xml.etree.ElementTree as ET  # parsing our own probe responses, small and bounded
from dataclasses import dataclass

import aiohttp

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
        root = ET.fromstring(text)  # noqa: S314  # no entities in Wolf's reply; size-capped
    except ET.ParseError:
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

    def __init__(self, timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def probe(self, host: str, port: int) -> WolfStatus | None:
        """Wolf's status, or None when it does not answer."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"http://{host}:{port}/serverinfo"
        try:
            async with self._session.get(url) as response:
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
