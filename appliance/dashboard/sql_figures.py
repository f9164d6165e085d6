"""The dashboard's few SQL reads: comment counts, the latest comments, page titles, size.

They run every few seconds at most (see `collect.SLOW_REFRESH_S`), never per frame.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import os

import peewee as pw

from appliance.dashboard.snapshot import CommentLine
from appliance.storage import comment_store
from appliance.storage.database import is_postgres
from appliance.storage.models import Page, Site

LATEST_COMMENTS = 8
EXCERPT_CHARS = 400  # more than any terminal line shows; `render` trims to the width


def comment_counts(database: pw.Database) -> dict[str, int]:
    return {status: int(count) for status, count in comment_store.count_by_status(database).items()}


def latest_comments(database: pw.Database, limit: int = LATEST_COMMENTS) -> list[CommentLine]:
    return [CommentLine(id=row.id, site=row.site, path=row.path, author=row.author_name,
                        text=row.body_markdown[:EXCERPT_CHARS], status=row.status,
                        created_at=row.created_at.replace(tzinfo=dt.UTC).timestamp())
            for row in comment_store.list_comments(database, limit=limit)]


def page_titles(database: pw.Database, pages: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Titles of the given (site, path) pages that have one."""
    if not pages:
        return {}
    wanted = functools.reduce(operator.or_, [(Site.name == site) & (Page.path == path)
                                         for site, path in pages])
    with database.connection_context():
        query = (Page.select(Site.name, Page.path, Page.title).join(Site)
                 .where(wanted & (Page.title != "")).tuples())
        return {(site, path): title for site, path, title in query}


def database_size(database: pw.Database) -> int:
    """Bytes on disk: the SQLite file (with its WAL), or the PostgreSQL database."""
    with database.connection_context():
        if is_postgres(database):
            return int(database.execute_sql(
                "SELECT pg_database_size(current_database())").fetchone()[0])
        path = database.database
    if path == ":memory:":
        return 0
    return sum(os.path.getsize(name) for name in (path, path + "-wal") if os.path.exists(name))


def database_version(database: pw.Database) -> str:
    with database.connection_context():
        if is_postgres(database):
            return "PostgreSQL " + database.execute_sql("SHOW server_version").fetchone()[0]
        return "SQLite " + database.execute_sql("SELECT sqlite_version()").fetchone()[0]
