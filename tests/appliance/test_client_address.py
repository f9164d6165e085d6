"""Client addresses: forwarding headers are believed only from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from appliance.services.client_address import client_address

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(("peer", "headers", "expected"), [
    ("203.0.113.9", {}, "203.0.113.9"),
    # Spoofing from an untrusted peer changes nothing.
    ("203.0.113.9", {"X-Forwarded-For": "1.2.3.4"}, "203.0.113.9"),
    ("203.0.113.9", {"Forwarded": "for=1.2.3.4"}, "203.0.113.9"),
    # Through our proxy: the hop our proxy appended is the client...
    ("10.0.0.2", {"X-Forwarded-For": "198.51.100.7"}, "198.51.100.7"),
    # ...even when the client prepended a forged address.
    ("10.0.0.2", {"X-Forwarded-For": "1.2.3.4, 198.51.100.7"}, "198.51.100.7"),
    # Two trusted proxies in a row are skipped.
    ("10.0.0.2", {"X-Forwarded-For": "198.51.100.7, 10.0.0.5"}, "198.51.100.7"),
    ("10.0.0.2", {"Forwarded": 'for=198.51.100.7;proto=https, for="[2001:db8::1]:443"'},
     "2001:db8::1"),
    ("::1", {"X-Forwarded-For": "2001:db8::5"}, "2001:db8::5"),
    ("10.0.0.2", {"X-Forwarded-For": "not-an-ip"}, "10.0.0.2"),
    ("10.0.0.2", {}, "10.0.0.2"),
    (None, {"X-Forwarded-For": "1.2.3.4"}, None),
])
def test_client_address(peer, headers, expected):
    assert client_address(peer, headers, PROXIES) == expected
