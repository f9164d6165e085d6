"""Live pushes of page totals: at once for an isolated change, coalesced under a burst.

An interaction that changes a page some live socket follows (web/watched_pages.py) takes the
page's throttle `live:PAGE` in Redis (the interaction script, `SET NX PX live_coalesce_ms`)
and, if it got it, asks this worker to push the page. The push releases the throttle and
reads the totals in one script (PUBLISH_TOTALS_SCRIPT), so any interaction after that read
takes the throttle again and causes its own push: the last state is always pushed.

When to push is a leading-edge throttle shared by all workers: `live_sent:PAGE` (below)
marks a page pushed within the last interval. A page not pushed within the interval is pushed
at once; one pushed recently waits for the rest of the interval, and every interaction in
the meantime finds the throttle taken and rides on that one push. So a page pushes at most
once per interval, whichever workers its interactions reach, and an isolated interaction
is seen live without waiting an interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Protocol

from appliance import events
from appliance.events import LiveEvent
from appliance.storage.counter_store import PREFIX, page_member

log = logging.getLogger("ovation.web")
CHUNK = 500  # pages per Redis round trip
IDLE_WAKE_S = 1.0  # how often an idle loop looks at the shutdown event


def sent_key(site: str, path: str) -> str:
    """`ov:{c}:live_sent:SITE|PATH`, a string living `live_coalesce_ms`: the page was pushed
    within the interval. In the counters' hash slot, like the throttle it works with."""
    return f"{PREFIX}live_sent:{page_member(site, path)}"


class TotalsSource(Protocol):
    async def publish_totals_many(self, pages: list[tuple[str, str]]) -> list[dict]: ...


class PublisherRuntime(Protocol):
    """What the publisher uses of the worker's runtime, read when pushing: the counter
    service is built after the publisher, which it takes as its scheduler."""

    redis: object
    counters: TotalsSource


class LivePublisher:
    """One per web worker: pushes the pages interactions mark as due (`schedule`)."""

    def __init__(self, runtime: PublisherRuntime, interval_s: float) -> None:
        self._runtime = runtime
        self._interval_ms = max(1, round(interval_s * 1000))
        self._due: set[tuple[str, str]] = set()  # to push now, unless pushed within interval
        self._later: dict[tuple[str, str], float] = {}  # page -> monotonic time to retry
        self._wakeup = asyncio.Event()
        self.scheduled = 0  # pushes asked for by this worker's interactions, ever

    def schedule(self, site: str, path: str) -> None:
        self.scheduled += 1
        self._due.add((site, path))
        self._wakeup.set()

    async def run(self, shutdown: asyncio.Event) -> None:
        while not shutdown.is_set():
            wait_s = IDLE_WAKE_S
            if self._later:
                wait_s = min(wait_s, max(0.0, min(self._later.values()) - time.monotonic()))
            if wait_s > 0:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=wait_s)
                except TimeoutError:
                    pass
            self._wakeup.clear()
            now = time.monotonic()
            ripe = [page for page, when in self._later.items() if when <= now]
            for page in ripe:
                del self._later[page]
            batch, self._due = self._due.union(ripe), set()
            if not batch:
                continue
            try:
                await self.push(batch)
            except Exception as exc:  # a missed push is superseded by the next; never crash
                log.warning("live push of %d pages failed: %s", len(batch), exc)

    async def push(self, pages: set[tuple[str, str]]) -> None:
        """Push the pages not pushed within the interval; the others wait for their turn."""
        for chunk in _chunks(sorted(pages), CHUNK):
            pipe = self._runtime.redis.pipeline(transaction=False)
            for site, path in chunk:
                pipe.set(sent_key(site, path), "1", nx=True, px=self._interval_ms)
                pipe.pttl(sent_key(site, path))
            replies = await pipe.execute()
            now_pages = []
            now = time.monotonic()
            for index, page in enumerate(chunk):
                if replies[index * 2]:
                    now_pages.append(page)
                else:  # pushed within the interval (maybe by another worker): wait it out
                    remaining_ms = max(int(replies[index * 2 + 1]), 0)  # -2: expired since
                    when = now + remaining_ms / 1000
                    self._later[page] = min(self._later.get(page, when), when)
            if now_pages:
                await self._publish(now_pages)

    async def _publish(self, pages: list[tuple[str, str]]) -> None:
        totals = await self._runtime.counters.publish_totals_many(pages)
        pipe = self._runtime.redis.pipeline(transaction=False)
        for (site, path), page_totals in zip(pages, totals, strict=True):
            event = LiveEvent("totals", site, path, {"totals": page_totals})
            pipe.publish(events.LIVE_CHANNEL, event.encode())
        await pipe.execute()


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
