"""`platformctl backup` and `restore`: a consistent copy of the SQL database, and back.

A backup flushes the pending counters first, so it holds every interaction acknowledged until
then. SQLite is copied with its online backup API (readers and the flusher keep working);
PostgreSQL with `pg_dump --format=custom`. A restore refuses to run while Ovation's processes
do, checks the file before touching anything, replaces the database in one step, and drops the
Redis caches built from the old data.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from appliance.errors import InvalidImport, OperationFailed
from appliance.settings import Settings

Progress = Callable[[int, int], None]  # (done, total) in pages or bytes
SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
CACHE_PATTERNS = ("ov:{c}:sql:*", "ov:thread:*", "ov:ccount:*")


@dataclass(frozen=True)
class BackupReport:
    path: Path
    kind: str  # sqlite | postgresql
    size_bytes: int
    flushed: str  # what the flush before it did, in words


def sqlite_path(settings: Settings) -> Path | None:
    url = settings.effective_database_url
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def default_backup_path(settings: Settings, now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    suffix = "db" if sqlite_path(settings) else "pgdump"
    return settings.data_dir / "backups" / f"ovation-{stamp}.{suffix}"


def flush_before_backup(settings: Settings) -> str:
    """Move pending counters to SQL so the backup holds them; say what happened."""
    from appliance.jobs.flush import durability_wait, flush_once
    from appliance.operations.redis_access import operation_redis
    from appliance.storage.database import open_database

    with operation_redis(settings) as client:
        if client is None:
            return "Redis is not reachable: counters still pending there are not in this backup"
        report = flush_once(client, open_database(settings.effective_database_url),
                            durability_wait_s=durability_wait(client))
    if report.batch_id is None:
        return "nothing was pending"
    return f"flushed {report.counters} pending counter(s) first"


def backup(settings: Settings, target: Path, progress: Progress) -> BackupReport:
    target = target.resolve()
    if target.exists():
        raise OperationFailed(f"{target} exists already; choose another --to.")
    target.parent.mkdir(parents=True, exist_ok=True)
    flushed = flush_before_backup(settings)
    partial = target.with_name(f".{target.name}.partial")
    try:
        source = sqlite_path(settings)
        if source is not None:
            _backup_sqlite(source, partial, progress)
            kind = "sqlite"
        else:
            _backup_postgres(settings.effective_database_url, partial, progress)
            kind = "postgresql"
        partial.chmod(0o600)  # e-mail addresses and hashes: not for every user to read
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(target, kind, target.stat().st_size, flushed)


def _backup_sqlite(source: Path, target: Path, progress: Progress) -> None:
    if not source.exists():
        raise OperationFailed(f"There is no database at {source} yet.")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, \
            sqlite3.connect(target) as dst:
        src.backup(dst, pages=64,
                   progress=lambda _status, remaining, total: progress(total - remaining, total))
    dst.close()
    src.close()


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if versions:
        return str(versions[-1])
    raise OperationFailed(f"{name} is not installed: apt-get install postgresql-client")


def _pg_env(url: str) -> tuple[list[str], dict[str, str]]:
    """Connection arguments for pg_dump/pg_restore; the password goes in the environment,
    never on the command line where `ps` shows it."""
    parts = urlsplit(url)
    env = {**os.environ}
    if parts.password:
        env["PGPASSWORD"] = parts.password
    args = ["--dbname", parts.path.lstrip("/") or "postgres"]
    if parts.hostname:
        args += ["--host", parts.hostname]
    if parts.port:
        args += ["--port", str(parts.port)]
    if parts.username:
        args += ["--username", parts.username]
    return args + ["--no-password"], env


def _backup_postgres(url: str, target: Path, progress: Progress) -> None:
    connection, env = _pg_env(url)
    argv = [_pg_tool("pg_dump"), "--format=custom", "--file", str(target), *connection]
    _run_with_size_progress(argv, env, target, progress)


def _run_with_size_progress(argv: list[str], env: dict[str, str], watched: Path,
                            progress: Progress) -> None:
    """pg_dump reports no progress: show the bytes written so far instead."""
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)
    reader.start()
    while process.poll() is None:
        size = watched.stat().st_size if watched.exists() else 0
        progress(size, 0)
        time.sleep(0.1)
    reader.join()
    if process.returncode != 0:
        lines = "".join(stderr).strip().splitlines()
        raise OperationFailed(f"{Path(argv[0]).name} failed: "
                              f"{lines[-1] if lines else process.returncode}")
    progress(watched.stat().st_size, watched.stat().st_size)


# restore ---------------------------------------------------------------------------------------

def backup_kind(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise InvalidImport(f"{path}: {exc.strerror}") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "postgresql"
    raise InvalidImport(f"{path} is not an Ovation backup (neither a SQLite database nor a "
                        "pg_dump custom-format file).")


def check_sqlite_backup(path: Path) -> None:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise InvalidImport(f"{path} is a damaged SQLite database.")
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        db.close()
    except sqlite3.DatabaseError as exc:
        raise InvalidImport(f"{path} cannot be read as SQLite: {exc}") from None
    if not {"schema_migration", "site", "comment"} <= tables:
        raise InvalidImport(f"{path} is a SQLite database but not an Ovation one.")


def restore(settings: Settings, source: Path, progress: Progress) -> str:
    """Replace the database with the backup in `source`; returns its kind."""
    kind = backup_kind(source)
    target = sqlite_path(settings)
    if kind == "sqlite" and target is None:
        raise InvalidImport("This is a SQLite backup but the database is PostgreSQL: move data "
                            "between the two with `platformctl export` and `import`.")
    if kind == "postgresql" and target is not None:
        raise InvalidImport("This is a PostgreSQL backup but the database is SQLite: move data "
                            "between the two with `platformctl export` and `import`.")
    _refuse_while_running(settings)
    if target is not None:
        check_sqlite_backup(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, \
                sqlite3.connect(target) as dst:
            src.backup(dst, pages=64, progress=lambda _s, remaining, total:
                       progress(total - remaining, total))
        src.close()
        dst.close()
    else:
        connection, env = _pg_env(settings.effective_database_url)
        listing = subprocess.run([_pg_tool("pg_restore"), "--list", str(source)],
                                 capture_output=True, text=True, check=False)
        if listing.returncode != 0 or "schema_migration" not in listing.stdout:
            raise InvalidImport(f"{source} is not a readable Ovation pg_dump file.")
        argv = [_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
                "--single-transaction", "--exit-on-error", *connection, str(source)]
        size = source.stat().st_size
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            raise OperationFailed(f"pg_restore failed (nothing was changed): "
                                  f"{lines[-1] if lines else result.returncode}")
        progress(size, size)
    drop_caches(settings)
    return kind


def _refuse_while_running(settings: Settings) -> None:
    from appliance.operations.services import service_states

    running = [service.name for service in service_states(settings)
               if service.running and service.name != "redis"]
    if running:
        raise OperationFailed(f"Ovation is running ({', '.join(running)}): stop it first "
                              "(`platformctl stop`, or Ctrl-C `platformctl up`), then restore.")


def drop_caches(settings: Settings) -> int:
    """Forget Redis caches built from SQL (they rebuild on the next read). Pending counters
    stay: they are interactions not yet in any database, and the next flush adds them."""
    import redis

    from appliance.operations.redis_access import operation_redis

    dropped = 0
    with operation_redis(settings) as client:
        if client is None:
            return 0  # unreachable: its caches expire on their own (totals_cache_ttl_s)
        try:
            for pattern in CACHE_PATTERNS:
                batch = list(client.scan_iter(match=pattern, count=1000))
                for start in range(0, len(batch), 1000):
                    dropped += client.delete(*batch[start:start + 1000])
        except (redis.exceptions.RedisError, OSError):
            return dropped
    return dropped
