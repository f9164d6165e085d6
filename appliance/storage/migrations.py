"""Explicit, numbered schema migrations (`platformctl migrate`; also run by `up`)."""

from __future__ import annotations

from collections.abc import Callable

import peewee as pw

from appliance.storage.models import ALL_MODELS, SchemaMigration


def _initial_schema(database: pw.Database) -> None:
    database.create_tables(ALL_MODELS)


MIGRATIONS: tuple[tuple[int, str, Callable[[pw.Database], None]], ...] = (
    (1, "initial schema", _initial_schema),
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
            with database.atomic():
                # Applied already (by an earlier run): skip. Run one `migrate` at a time.
                if SchemaMigration.get_or_none(SchemaMigration.version == version):
                    continue
                step(database)
                SchemaMigration.create(version=version, name=name)
                applied.append((version, name))
    return applied
