"""Opening the SQL database named by a URL (SQLite or PostgreSQL via psycopg2)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import peewee as pw
from playhouse.pool import PooledPostgresqlDatabase

from appliance.errors import ConfigError, ServiceUnavailable
from appliance.storage.models import database_proxy

SQLITE_PRAGMAS = {
    "journal_mode": "wal",  # readers never block the flusher's writes
    "synchronous": "normal",  # durable at checkpoints; WAL keeps it consistent
    "foreign_keys": 1,
    "busy_timeout": 10000,  # several processes share the file
}
# Web workers pool their PostgreSQL connections (`pooled=True`): every `connection_context()`
# would otherwise open a new connection (TCP, authentication) for each request that reads SQL.
# A worker uses at most its SQL threads' worth; a connection broken by a server restart is
# dropped from the pool after its first failure, and idle ones are replaced after a few
# minutes. Other processes (one flush every few seconds, CLI commands) connect when they need
# to, so they hold no idle connection slots.
PG_POOL_SIZE = 16
PG_POOL_STALE_S = 300
PG_POOL_WAIT_S = 10


def open_database(url: str, pooled: bool = False, pool_size: int = PG_POOL_SIZE) -> pw.Database:
    """Build (not connect) the peewee database for `url` and bind the models to it."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if parts.netloc:  # sqlite://relative/path is a common typo for sqlite:///relative/path
            raise ConfigError(f"database URL {url!r}: write sqlite:///PATH (three slashes)")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        database: pw.Database = pw.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS,
                                                  check_same_thread=False)
    elif parts.scheme in ("postgresql", "postgres"):
        pool = ({"max_connections": pool_size, "stale_timeout": PG_POOL_STALE_S,
                 "timeout": PG_POOL_WAIT_S} if pooled else {})
        database = (PooledPostgresqlDatabase if pooled else pw.PostgresqlDatabase)(
            unquote(parts.path.lstrip("/")) or "postgres", **pool,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            host=parts.hostname,
            port=parts.port,
            connect_timeout=5,
        )
    else:
        raise ConfigError(f"database URL {url!r}: use sqlite:///PATH or postgresql://...")
    database_proxy.initialize(database)
    return database


def close_database(database: pw.Database) -> None:
    """Close the database, including every pooled connection of every thread."""
    if isinstance(database, PooledPostgresqlDatabase):
        database.close_all()
    else:
        database.close()


def is_postgres(database: pw.Database) -> bool:
    return isinstance(database, pw.PostgresqlDatabase)


def write_transaction(database: pw.Database) -> AbstractContextManager[Any]:
    """A transaction that writes: `BEGIN IMMEDIATE` on SQLite, plain `atomic()` elsewhere.
    Nested in another transaction it is a savepoint, as `atomic()` is."""
    # SQLite in WAL mode: a plain (deferred) BEGIN takes a read snapshot at its first read.
    # If another connection commits before this transaction's first write, SQLite cannot
    # upgrade that snapshot and answers SQLITE_BUSY ("database is locked") at once, without
    # waiting `busy_timeout`. BEGIN IMMEDIATE takes the write lock first, waiting for it up to
    # `busy_timeout`, and then reads the newest snapshot. PostgreSQL waits for row locks.
    #
    # Per call site rather than `SqliteDatabase(lock_type="IMMEDIATE")` for every transaction:
    # read-only transactions (`read_transaction`: the web's `read_page_totals`) stay deferred,
    # so under WAL they never queue behind the flusher's or the listener's writes.
    #
    # The lock is taken only when the models run on this very `Database`. A process that opens
    # a second one for the same file (tests running the web app in process next to their own;
    # `platformctl status` probing the database) has the models bound to the last one opened:
    # a write lock held here, on a connection the queries never use, would block those very
    # queries until `busy_timeout` and fail them. That transaction covers none of its queries
    # anyway; deferred, it blocks nothing. Each serving process opens one database.
    # tests/appliance/test_sqlite_write_locks.py checks that no other `atomic()` writes.
    if isinstance(database, pw.SqliteDatabase) and database_proxy.obj is database:
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


def read_transaction(database: pw.Database) -> AbstractContextManager[Any]:
    """A transaction that only reads (one consistent snapshot): deferred on SQLite, so under
    WAL it never waits for a writer. A write inside it may fail at once: use
    `write_transaction` for that."""
    return database.atomic()


def check_database(database: pw.Database) -> None:
    """Raise ServiceUnavailable unless a trivial query works."""
    try:
        database.execute_sql("SELECT 1")
    except pw.PeeweeException as exc:
        raise ServiceUnavailable(f"The database is not reachable: {exc}".strip()) from exc
    except Exception as exc:  # psycopg2.OperationalError and friends
        raise ServiceUnavailable(f"The database is not reachable: {exc}".strip()) from exc
