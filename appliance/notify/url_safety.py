"""Where a webhook may point: SSRF protection, checked on the resolved addresses of every hop.

A URL is refused when any address its host resolves to is loopback, private, link-local,
shared (CGNAT), multicast, reserved or unspecified — unless the operator allows private
addresses — and always when it is a cloud metadata address. The caller then connects to the
very address that was checked, so a DNS answer that changes between check and connection
(rebinding) cannot sneak past.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from appliance.errors import OvationError

MAX_URL_LENGTH = 2048
# Cloud instance metadata services (AWS, GCP, Azure, OpenStack; AWS IPv6; Alibaba; AWS ECS).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(address) for address in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"))
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "instance-data",
                            "metadata.azure.internal"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(OvationError):
    code = "unsafe_url"
    status = 400


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: SplitResult
    host: str
    port: int
    address: IPAddress


def check_shape(url: str) -> SplitResult:
    """http(s), a host, no credentials, a sane length: what every webhook URL must be."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"A webhook URL must be 1 to {MAX_URL_LENGTH} characters.")
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise UnsafeURL("A webhook URL may not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise UnsafeURL(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("A webhook URL must start with http:// or https:// and name a host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("Put no credentials in a webhook URL: requests are signed instead.")
    return parts


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why `address` may not be reached, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if address.is_global and not address.is_multicast:
        return None
    if allow_private and (address.is_loopback or address.is_private or address.is_link_local):
        return None
    return f"{address} is not a public address (loopback, private, link-local or reserved)"


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    # scope ids ("fe80::1%eth0") are dropped: they only ever name link-local addresses
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_target(url: str, allow_private: bool) -> Target:
    """The URL checked and resolved; UnsafeURL if it may not be reached, OSError if its
    host does not resolve (a transient failure)."""
    parts = check_shape(url)
    host = parts.hostname or ""
    if host.rstrip(".").lower() in METADATA_HOSTS:
        raise UnsafeURL(f"{host} is a cloud metadata host.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason:
            raise UnsafeURL(f"Refused {host}: {reason}.")
    return Target(parts, host, port, addresses[0])
