"""Runs blocking SQL off the event loop, in a small thread pool of its own."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import peewee as pw

from appliance.errors import ServiceUnavailable

T = TypeVar("T")


class SqlRunner:
    """`await runner.run(fn, *args)` calls `fn(*args)` in a worker thread.

    Database driver errors become ServiceUnavailable, so a database outage is a 503 with a
    clear message, never a 500.
    """

    def __init__(self, max_threads: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="sql")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))
        except (pw.OperationalError, pw.InterfaceError) as exc:
            raise ServiceUnavailable(f"The database is not reachable: {exc}".strip()) from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
