"""The join link a class opens: the address the phones must use, which is rarely the teacher's own.

The teacher usually looks at the app through ``localhost`` (or 127.0.0.1)
while the class reaches the same server through the machine's network
address, so the link copied from the teacher's address bar would send every
phone to itself. ``join_link`` builds the link from the address the server
listens on instead, whenever the teacher's own address is a loopback one,
and says whether phones can reach it at all: a server that listens on
127.0.0.1 only (LLM Lab's default) cannot be joined from another device.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from core.rooms.codes import normalise_code

JOIN_PATH = "join"  # the join page's url_path in streamlit_app.py
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True)
class JoinLink:
    """The link for the board and the QR code, and whether another device can open it."""

    url: str
    reachable: bool  # False: the server listens on this machine only (or no network address was found)


def network_address() -> str | None:
    """This machine's address on its network: the one its default route leaves from (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # UDP connect only chooses a route
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address in LOOPBACK_HOSTS or address in ANY_ADDRESS else address


def join_link(code: str, page_url: str | None, listen_address: str, port: int, base_path: str = "") -> JoinLink:
    """The join page's URL for room ``code``.

    ``page_url`` is the address the teacher's browser uses (None when
    unknown); ``listen_address`` and ``port`` are the server's, ``base_path``
    Streamlit's ``server.baseUrlPath``. A teacher on a network address (or
    behind a proxy) keeps it; a teacher on loopback gets the server's network
    address instead.
    """
    code = normalise_code(code)
    parts = urlsplit(page_url) if page_url else None
    scheme = parts.scheme if parts and parts.scheme else "http"
    host = parts.hostname if parts else None
    shown_port = parts.port if parts and parts.hostname else port
    listens_beyond = listen_address not in LOOPBACK_HOSTS
    if host is None or host in LOOPBACK_HOSTS:
        host = (network_address() if listen_address in ANY_ADDRESS else listen_address) if listens_beyond else None
        shown_port = port
    reachable = host is not None
    host = host or "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    if shown_port is not None:
        netloc += f":{shown_port}"
    path = "/" + "/".join(part for part in (base_path.strip("/"), JOIN_PATH) if part)
    return JoinLink(urlunsplit((scheme, netloc, path, urlencode({"room": code}), "")), reachable)
