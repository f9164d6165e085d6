"""Explicit, numbered schema migrations (`platformctl migrate`; also run by `up`)."""

from __future__ import annotations

from collections.abc import Callable

import peewee as pw
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator
from playhouse.migrate import migrate as run_operations

from appliance.storage.database import write_transaction
from appliance.storage.models import (
    AdminToken,
    Ban,
    Comment,
    Counter,
    FlushBatch,
    IpSalt,
    Page,
    ProcessedEvent,
    SchemaMigration,
    Site,
    UniqueVisitors,
)
from appliance.storage.notification_models import EmailSubscription, Webhook

# Migration 1 creates the tables from the current models, so a fresh database is complete after
# it; every later step therefore adds only what is missing, and works on both kinds of database.
_V2_SITE_COLUMNS = {
    "moderation": pw.CharField(max_length=16, default="open"),
    "owner_email": pw.CharField(max_length=254, default=""),
}
_V2_COMMENT_COLUMNS = {
    "notify_replies": pw.BooleanField(default=False),
    "avatar_seed": pw.CharField(max_length=32, default=""),
    "votes_up": pw.BigIntegerField(default=0),
    "votes_down": pw.BigIntegerField(default=0),
}
_V4_SITE_COLUMNS = {
    "reactions": pw.TextField(default=""),
    "rate_limits": pw.TextField(default="{}"),
}
_V6_COMMENT_COLUMNS = {"deleted_while_hidden": pw.BooleanField(default=False)}


def _migrator(database: pw.Database):
    if isinstance(database, pw.PostgresqlDatabase):
        return PostgresqlMigrator(database)
    return SqliteMigrator(database)


def _add_missing_columns(database: pw.Database, table: str, columns: dict) -> None:
    present = {column.name for column in database.get_columns(table)}
    migrator = _migrator(database)
    operations = [migrator.add_column(table, name, field)
                  for name, field in columns.items() if name not in present]
    if operations:
        run_operations(*operations)


def _initial_schema(database: pw.Database) -> None:
    database.create_tables([Site, Page, Counter, UniqueVisitors, FlushBatch, Comment,
                            ProcessedEvent])


def _comments_and_admin(database: pw.Database) -> None:
    _add_missing_columns(database, "site", _V2_SITE_COLUMNS)
    _add_missing_columns(database, "comment", _V2_COMMENT_COLUMNS)
    database.create_tables([AdminToken, Ban])
    database.execute_sql("CREATE INDEX IF NOT EXISTS comment_page_status_created "
                         "ON comment (page_id, status, created_at)")


def _notifications(database: pw.Database) -> None:
    database.create_tables([Webhook, EmailSubscription])


def _plugins_and_site_limits(database: pw.Database) -> None:
    _add_missing_columns(database, "site", _V4_SITE_COLUMNS)
    if isinstance(database, pw.PostgresqlDatabase):
        # Choice and score types count parts (`emoji.heart`, `stars.sum`): longer names.
        # SQLite does not enforce VARCHAR lengths, so only PostgreSQL needs the change.
        database.execute_sql("ALTER TABLE counter ALTER COLUMN reaction TYPE VARCHAR(64)")


def _ip_salts(database: pw.Database) -> None:
    database.create_tables([IpSalt])


def _hidden_deletions(database: pw.Database) -> None:
    _add_missing_columns(database, "comment", _V6_COMMENT_COLUMNS)


MIGRATIONS: tuple[tuple[int, str, Callable[[pw.Database], None]], ...] = (
    (1, "initial schema", _initial_schema),
    (2, "comment moderation, votes, admin tokens and bans", _comments_and_admin),
    (3, "notification webhooks and e-mail subscriptions", _notifications),
    (4, "per-site reaction types and rate limits", _plugins_and_site_limits),
    (5, "rotating salts of the IP hashes", _ip_salts),
    (6, "comments deleted while hidden stay hidden", _hidden_deletions),
)


def pending_migrations(database: pw.Database) -> list[tuple[int, str]]:
    with database.connection_context():
        if not database.table_exists(SchemaMigration._meta.table_name):
            return [(version, name) for version, name, _ in MIGRATIONS]
        done = {row.version for row in SchemaMigration.select(SchemaMigration.version)}
    return [(version, name) for version, name, _ in MIGRATIONS if version not in done]


def migrate(database: pw.Database) -> list[tuple[int, str]]:
    """Apply every migration not yet applied, each in its own transaction. Returns them."""
    applied = []
    with database.connection_context():
        database.create_tables([SchemaMigration], safe=True)
        for version, name, step in MIGRATIONS:
            with write_transaction(database):
                # Applied already (by an earlier run): skip. Run one `migrate` at a time.
                if SchemaMigration.get_or_none(SchemaMigration.version == version):
                    continue
                step(database)
                SchemaMigration.create(version=version, name=name)
                applied.append((version, name))
    return applied
