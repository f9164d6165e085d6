"""Who the client is: its address, trusting forwarding headers only from configured proxies."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence

_FORWARDED_FOR = re.compile(r'for="?\[?([^\]";,]+)\]?(?::\d+)?"?', re.IGNORECASE)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address, proxies: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(peer: str | None, headers: Mapping[str, str],
                   proxies: Sequence[Network]) -> str | None:
    """The client's address. Forwarding headers count only when the peer is a trusted proxy;
    then the nearest address in the chain that is not a trusted proxy is the client (a client
    can prepend anything to X-Forwarded-For, but cannot forge what our proxy appended)."""
    if not proxies:  # no proxy is trusted: the peer it is, without parsing it (every request)
        return peer
    peer_address = _parse(peer or "")
    if not _trusted(peer_address, proxies):
        return peer
    chain: list[str] = []
    forwarded = headers.get("Forwarded")
    if forwarded:
        chain = _FORWARDED_FOR.findall(forwarded)
    elif headers.get("X-Forwarded-For"):
        chain = [part.strip() for part in headers["X-Forwarded-For"].split(",")]
    for candidate in reversed(chain):
        address = _parse(candidate)
        if address is None:
            return peer  # a malformed hop: don't guess, use what we can see
        if not _trusted(address, proxies):
            return str(address)
    return peer
