"""Signed links in notification e-mails: double opt-in confirmation and one-click unsubscribe.

A token is `PAYLOAD.SIGNATURE`, both base64url: the payload names the action, site, address
and list and when the link was made; the signature is an HMAC-SHA256 with a key derived from
the instance's secret, so a link cannot be forged or altered, and no table of tokens is kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from appliance.errors import OvationError

CONFIRM_MAX_AGE_S = 7 * 86400  # an unconfirmed request goes stale; unsubscribe links never do
LISTS = ("replies", "posts")
UNSUBSCRIBE_LISTS = (*LISTS, "all")
MAX_TOKEN_LENGTH = 1024


@dataclass(frozen=True)
class LinkClaim:
    action: str  # confirm | unsubscribe
    site: str
    address: str
    list_name: str  # replies | posts (| all, to unsubscribe from every list)
    issued_at: int


def _link_key(secret: bytes) -> bytes:
    # A key of its own: a visitor hash can never double as a valid link signature.
    return hmac.new(secret, b"ovation notification links v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, action: str, site: str, address: str, list_name: str,
               now: float | None = None) -> str:
    payload = _b64(json.dumps([action, site, address.lower(), list_name,
                               int(now if now is not None else time.time())],
                              separators=(",", ":")).encode())
    signature = hmac.new(_link_key(secret), payload.encode(), hashlib.sha256).digest()[:18]
    return f"{payload}.{_b64(signature)}"


def read_token(secret: bytes, token: str, action: str, now: float | None = None) -> LinkClaim:
    """The claim of a valid token for `action`; `invalid_token` (400) for anything else."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise _invalid()
    payload, _, signature = token.partition(".")
    expected = hmac.new(_link_key(secret), payload.encode(), hashlib.sha256).digest()[:18]
    try:
        valid = hmac.compare_digest(_unb64(signature), expected)
        fields = json.loads(_unb64(payload)) if valid else None
    except (ValueError, TypeError):
        raise _invalid() from None
    if not valid or not isinstance(fields, list) or len(fields) != 5:
        raise _invalid()
    claim = LinkClaim(*fields)
    allowed = UNSUBSCRIBE_LISTS if action == "unsubscribe" else LISTS
    if claim.action != action or claim.list_name not in allowed:
        raise _invalid()
    now = time.time() if now is None else now
    if action == "confirm" and now - claim.issued_at > CONFIRM_MAX_AGE_S:
        raise OvationError("This confirmation link has expired: subscribe again to get a new "
                           "one.", code="invalid_token", status=400)
    return claim


def _invalid() -> OvationError:
    return OvationError("This link is not valid: it may have been cut short or altered.",
                        code="invalid_token", status=400)
