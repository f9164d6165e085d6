"""Lua script calls of concurrent requests, sent to Redis together in one pipeline.

A web worker serving many readers at once has many requests waiting on Redis at the same
moment. Sent one by one, each costs its own write and read on the socket and its own wake-up;
sent together, a burst costs one of each. Every caller still awaits its own script's result, so
a request is acknowledged only after Redis has run its script, exactly as before, and a script's
error reaches only its own caller. A pipeline is not a transaction: each script stays atomic on
its own, and scripts of different requests were never ordered relative to each other anyway.

The batch is written and read without redis-py's Pipeline: every interaction, read and comment
runs a script through here, and the Pipeline's per-command bookkeeping, with each argument
encoded in Python, was the largest part of a web worker's CPU per interaction. Each call is
packed once, in C (`hiredis.pack_command`), when it is queued; the batch is one write on a
pooled connection and its replies are read in order, under the connection's own retry policy,
as the Pipeline did.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis import exceptions as redis_errors


class ScriptBatcher:
    """Queues `script(keys, args)` calls made in one turn of the event loop, runs them in one
    pipeline on the next turn, and hands each caller its own result or exception."""

    def __init__(self, client, max_batch: int = 512) -> None:
        self._client = client
        self._max_batch = max_batch
        self._queue: list[tuple[Any, list, list, bytes, asyncio.Future]] = []
        self._scheduled = False
        self._running: set[asyncio.Task] = set()

    async def call(self, script, keys: list, args: list) -> Any:
        packed = pack_evalsha(script.sha, keys, args)  # a bad argument fails its caller only
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((script, keys, args, packed, future))
        if len(self._queue) >= self._max_batch:
            self._send()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send)  # other requests ready in this turn queue theirs first
        return await future

    def _send(self) -> None:
        self._scheduled = False
        batch, self._queue = self._queue, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[Any, list, list, bytes, asyncio.Future]]) -> None:
        try:
            results = await self._exchange(b"".join(call[3] for call in batch), len(batch))
        except Exception as exc:  # the connection failed: every caller hears it
            for *_, future in batch:
                _fail(future, exc)
            return
        for (script, keys, args, _packed, future), result in zip(batch, results, strict=True):
            if isinstance(result, redis_errors.NoScriptError):
                # Redis forgot the script (restarted, SCRIPT FLUSH): it did not run, so run it
                # again alone; the Script object loads it and retries.
                try:
                    result = await script(keys=keys, args=args)
                except Exception as exc:
                    result = exc
            if isinstance(result, Exception):
                _fail(future, result)
            else:
                _settle(future, result)

    async def _exchange(self, packed: bytes, count: int) -> list[Any]:
        """Write `count` packed commands at once and read their replies in order: each a
        value, or the ResponseError Redis answered for that command alone."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()

        async def attempt() -> list[Any]:
            await connection.send_packed_command(packed)
            replies: list[Any] = []
            for _ in range(count):
                try:
                    replies.append(await connection.read_response())
                except redis_errors.ResponseError as exc:  # read whole: the stream stays in step
                    replies.append(exc)
            return replies

        async def failed(_error: Exception) -> None:
            await connection.disconnect()

        try:
            return await connection.retry.call_with_retry(attempt, failed)
        except BaseException:
            # Replies of the batch may still be on the socket: never hand it to another caller.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)


def pack_evalsha(sha: str, keys: list, args: list) -> bytes:
    """EVALSHA in the Redis protocol, packed in C. Arguments as redis-py sends them: str,
    bytes, int and float (as `repr`); anything else is refused with redis-py's DataError."""
    try:
        return hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))
    except TypeError as exc:
        raise redis_errors.DataError(str(exc)) from None


def _settle(future: asyncio.Future, result: Any) -> None:
    if not future.done():  # the caller may have been cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
