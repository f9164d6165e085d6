"""Opening the SQL database named by a URL (SQLite or PostgreSQL via psycopg2)."""

from __future__ import annotations

from pathlib import Path
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


def check_database(database: pw.Database) -> None:
    """Raise ServiceUnavailable unless a trivial query works."""
    try:
        database.execute_sql("SELECT 1")
    except pw.PeeweeException as exc:
        raise ServiceUnavailable(f"The database is not reachable: {exc}".strip()) from exc
    except Exception as exc:  # psycopg2.OperationalError and friends
        raise ServiceUnavailable(f"The database is not reachable: {exc}".strip()) from exc
