"""Admin tokens: created once and shown once, stored only as a SHA-256, checked by scope and site.

Scopes are ordered: `read` < `moderate` < `admin`, and a token holds everything below its own
scope. A token may be bound to one site; it then opens nothing of any other site.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import peewee as pw

from appliance.errors import Forbidden, InvalidInput, Unauthorized, UnknownSite, UnknownToken
from appliance.services.sites import validate_site_name
from appliance.storage import site_store, token_store
from appliance.storage.models import utcnow
from appliance.storage.token_store import TokenRecord

TOKEN_PREFIX = "ovt_"
SCOPES: tuple[str, ...] = ("read", "moderate", "admin")  # each implies the ones before it
MAX_TOKEN_LENGTH = 200
MAX_NAME_LENGTH = 100
# last_used_at is written at most this often per token: a busy script costs no write per call.
TOUCH_INTERVAL = dt.timedelta(seconds=60)
_NO_SUCH_HASH = "0" * 64


@dataclass(frozen=True)
class NewToken:
    """A token just created: `token` is the only copy there will ever be."""

    record: TokenRecord
    token: str = dataclasses.field(repr=False)


def hash_token(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode("utf-8")).hexdigest()


def validate_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise InvalidInput(f"Scope {scope!r} must be one of: {', '.join(SCOPES)}.",
                           details={"field": "scope"})
    return scope


def scope_allows(granted: str, needed: str) -> bool:
    """True if a token of scope `granted` may do what needs `needed` (admin implies all)."""
    if needed not in SCOPES:
        raise ValueError(f"unknown scope {needed!r}")
    return granted in SCOPES and SCOPES.index(granted) >= SCOPES.index(needed)


def _validate_name(name: str) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME_LENGTH or not text.isprintable():
        raise InvalidInput(f"Token name must be 1 to {MAX_NAME_LENGTH} printable characters.",
                           details={"field": "name"})
    return text


def create_token(database: pw.Database, name: str, scope: str = "read",
                 site: str | None = None) -> NewToken:
    """Make a token; only its hash is stored, so the returned `token` cannot be shown again."""
    name = _validate_name(name)
    validate_scope(scope)
    if site is not None:
        validate_site_name(site)
        if site_store.get_site(database, site) is None:
            raise UnknownSite(f"No site is named {site!r} (see `platformctl site list`).")
    raw_token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = token_store.insert_token(database, name, hash_token(raw_token), scope, site)
    return NewToken(record=record, token=raw_token)


def list_tokens(database: pw.Database) -> list[TokenRecord]:
    return token_store.list_tokens(database)


def revoke_token(database: pw.Database, token_id: int) -> tuple[TokenRecord, bool]:
    """Revoke a token at once. Returns it, and False if it was revoked already."""
    if token_store.get_token(database, token_id) is None:
        raise UnknownToken(f"No token has id {token_id} (see `platformctl token list`).")
    changed = token_store.revoke_token(database, token_id)
    record = token_store.get_token(database, token_id)
    assert record is not None
    return record, changed


def authenticate(database: pw.Database, raw_token: str | None, needed_scope: str,
                 site: str | None = None, now: dt.datetime | None = None) -> TokenRecord:
    """The token's record if it is active, holds `needed_scope` and may act on `site`.

    Unknown, malformed and revoked tokens are all `unauthorized` (401) with the same message,
    so a caller learns nothing from trying; a valid token that may not do this is `forbidden`.
    `site` None means the request names no site (a token bound to a site still passes).
    """
    if needed_scope not in SCOPES:
        raise ValueError(f"unknown scope {needed_scope!r}")
    if not raw_token:
        raise Unauthorized("An admin token is required: send `Authorization: Bearer TOKEN` "
                           "(create one with `platformctl token create`).")
    refused = Unauthorized("The admin token is unknown or revoked.")
    if (not isinstance(raw_token, str) or len(raw_token) > MAX_TOKEN_LENGTH
            or not raw_token.startswith(TOKEN_PREFIX)):
        raise refused
    presented = hash_token(raw_token)
    record = token_store.find_by_hash(database, presented)
    stored = record.token_hash if record is not None else _NO_SUCH_HASH
    if not hmac.compare_digest(stored, presented) or record is None or not record.active:
        raise refused
    if not scope_allows(record.scope, needed_scope):
        raise Forbidden(f"Token {record.name!r} has scope {record.scope!r}; this needs "
                        f"{needed_scope!r}.", code="forbidden")
    if record.site is not None and site is not None and record.site != site:
        raise Forbidden(f"Token {record.name!r} is bound to site {record.site!r}.",
                        code="forbidden")
    now = now or utcnow()
    if record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL:
        token_store.touch_token(database, record.id, now)
        record = dataclasses.replace(record, last_used_at=now)
    return record
