"""SQL reads and writes of admin tokens (only their SHA-256 is ever stored)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import peewee as pw

from appliance.storage.database import write_transaction
from appliance.storage.models import AdminToken, utcnow


@dataclass(frozen=True)
class TokenRecord:
    """An admin token as the rest of the appliance sees it: never the token itself."""

    id: int
    name: str
    scope: str
    site: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None
    token_hash: str = field(repr=False)  # SHA-256 hex of the token, never the token

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _record(row: AdminToken) -> TokenRecord:
    return TokenRecord(id=row.id, name=row.name, scope=row.scopes, site=row.site,
                       created_at=row.created_at, last_used_at=row.last_used_at,
                       revoked_at=row.revoked_at, token_hash=row.token_hash)


def insert_token(database: pw.Database, name: str, token_hash: str, scope: str,
                 site: str | None) -> TokenRecord:
    with database.connection_context(), write_transaction(database):
        row = AdminToken.create(name=name, token_hash=token_hash, scopes=scope, site=site)
        return _record(AdminToken.get_by_id(row.id))


def list_tokens(database: pw.Database) -> list[TokenRecord]:
    with database.connection_context():
        return [_record(row) for row in AdminToken.select().order_by(AdminToken.id)]


def get_token(database: pw.Database, token_id: int) -> TokenRecord | None:
    with database.connection_context():
        row = AdminToken.get_or_none(AdminToken.id == token_id)
        return _record(row) if row else None


def find_by_hash(database: pw.Database, token_hash: str) -> TokenRecord | None:
    with database.connection_context():
        row = AdminToken.get_or_none(AdminToken.token_hash == token_hash)
        return _record(row) if row else None


def revoke_token(database: pw.Database, token_id: int, when: dt.datetime | None = None) -> bool:
    """Mark the token revoked; False if it was revoked already (or does not exist)."""
    with database.connection_context():
        changed = (AdminToken.update(revoked_at=when or utcnow())
                   .where((AdminToken.id == token_id) & AdminToken.revoked_at.is_null())
                   .execute())
        return changed > 0


def touch_token(database: pw.Database, token_id: int, when: dt.datetime) -> None:
    with database.connection_context():
        AdminToken.update(last_used_at=when).where(AdminToken.id == token_id).execute()
