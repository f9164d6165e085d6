"""Lua script calls of concurrent requests, sent to Redis together in one pipeline.

A web worker serving many readers at once has many requests waiting on Redis at the same
moment. Sent one by one, each costs its own write and read on the socket and its own wake-up;
sent together, a burst costs one of each. Every caller still awaits its own script's result, so
a request is acknowledged only after Redis has run its script, exactly as before, and a script's
error reaches only its own caller. A pipeline is not a transaction: each script stays atomic on
its own, and scripts of different requests were never ordered relative to each other anyway.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis import exceptions as redis_errors


class ScriptBatcher:
    """Queues `script(keys, args)` calls made in one turn of the event loop, runs them in one
    pipeline on the next turn, and hands each caller its own result or exception."""

    def __init__(self, client, max_batch: int = 512) -> None:
        self._client = client
        self._max_batch = max_batch
        self._queue: list[tuple[Any, list, list, asyncio.Future]] = []
        self._scheduled = False
        self._running: set[asyncio.Task] = set()

    async def call(self, script, keys: list, args: list) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((script, keys, args, future))
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

    async def _run(self, batch: list[tuple[Any, list, list, asyncio.Future]]) -> None:
        if len(batch) == 1:  # nothing to share: no pipeline overhead
            script, keys, args, future = batch[0]
            try:
                _settle(future, await script(keys=keys, args=args))
            except Exception as exc:
                _fail(future, exc)
            return
        pipe = self._client.pipeline(transaction=False)
        try:
            for script, keys, args, _future in batch:
                # EVALSHA queued as a plain command: a Script object queued on a pipeline
                # makes `execute` send SCRIPT EXISTS first, a second round trip per batch.
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the connection failed: every caller hears it
            for *_, future in batch:
                _fail(future, exc)
            return
        for (script, keys, args, future), result in zip(batch, results, strict=True):
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


def _settle(future: asyncio.Future, result: Any) -> None:
    if not future.done():  # the caller may have been cancelled meanwhile
        future.set_result(result)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
