"""A Redis client for a one-off operation, even while Ovation is stopped.

When Ovation owns its Redis and nothing runs it, the owned redis-server is started for the
duration of the operation (its AOF holds pending counters and caches that a backup must flush
and a restore must drop), then stopped again.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import redis

from appliance.settings import Settings
from appliance.storage.redis_client import sync_redis
from appliance.supervision import owned_redis


@contextlib.contextmanager
def operation_redis(settings: Settings) -> Iterator[redis.Redis | None]:
    """Yield a client that answers, or None when Redis cannot be reached."""
    process: subprocess.Popen | None = None
    if settings.owns_redis and not owned_redis.socket_answers(settings.redis_socket) \
            and settings.redis_dir.is_dir():
        owned_redis.prepare_directory(settings.redis_dir)
        process = subprocess.Popen(owned_redis.redis_command(settings.redis_dir),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            owned_redis.wait_for_socket(settings.redis_socket, process)
        except Exception:
            process.kill()
            process.wait()
            process = None
    client = sync_redis(settings)
    try:
        try:
            client.ping()
        except (redis.exceptions.RedisError, OSError):
            yield None
        else:
            yield client
    finally:
        client.close()
        if process is not None:
            process.terminate()  # SIGTERM: redis-server writes its AOF and exits cleanly
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
