"""Opening SQL and Redis for a blocking process (flusher, workers, CLI), with clear errors."""

from __future__ import annotations

import peewee as pw
import redis

from appliance.errors import ServiceUnavailable
from appliance.settings import Settings
from appliance.storage.database import check_database, open_database
from appliance.storage.migrations import pending_migrations
from appliance.storage.redis_client import check_redis, sync_redis


def open_sql(settings: Settings, require_schema: bool = True) -> pw.Database:
    database = open_database(settings.effective_database_url)
    check_database(database)
    if require_schema:
        try:
            missing = pending_migrations(database)
        except pw.PeeweeException as exc:
            raise ServiceUnavailable(f"The database is not reachable: {exc}") from exc
        if missing:
            raise ServiceUnavailable(
                f"The database at {settings.effective_database_url} needs "
                f"{len(missing)} migration(s): run `platformctl migrate`.")
    return database


def open_redis(settings: Settings) -> redis.Redis:
    client = sync_redis(settings)
    check_redis(client, settings)
    return client
