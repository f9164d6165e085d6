"""Which pages live sockets follow, shared by every web worker and host through Redis leases.

An interaction pushes its page live only if some socket, on any worker, follows the page:
INTERACT_SCRIPT takes the page's live throttle (and so makes its worker push) only while
`ov:{c}:watched:SITE|PATH` exists. A push nobody receives costs the interaction's worker a
second script (the totals read) and a PUBLISH, and most pages read have no socket open on them.

The mark is a lease. Each worker sets it (`SET PX live_watch_ttl_s`) when one of its sockets
follows a page it had not marked lately, and renews the marks of all the pages its sockets
follow every third of the lease, in one pipeline per period (not one write per socket).
Nothing deletes a mark: other workers and hosts may follow the same page, and no worker knows.
A page nobody follows any more, or whose only worker died, stops being pushed when the last
lease runs out.

The races, and why no change is missed:

- A socket subscribes while interactions run. `subscribe` follows the pages in this worker's
  broker, then marks them here (awaited: the mark is in Redis), and only then reads the totals
  it sends in `subscribed`. The interaction script is atomic, so each interaction runs either
  before the mark, and is included in that read, or after it, and then finds the mark and
  takes the throttle (or finds it taken by an earlier one whose push has not read the totals
  yet, and rides on it): a push follows, which this worker's broker delivers, after the
  `subscribed` frame (web/routes/live.py holds the pushes until then).
- Two sockets of one worker subscribe to one page at once. The second must not read its
  totals before the first's mark is in Redis: a mark still being written is shared, and the
  second waits for it too.
- The lease runs out while a socket still follows the page. Renewals come every third of the
  lease, so two in a row may fail before it does; a failed renewal is retried after a second.
  A page counts as marked by this worker, so that a new subscribe skips the write, only for
  half a lease after the mark was last sent: a late or failing renewal makes new subscribes
  write the mark themselves. A change can go unpushed only when renewals fail for a whole
  lease (Redis unreachable, when interactions fail too, or a worker stalled that long), or
  when Redis lost its data (restarted without it): renewals SET the mark rather than extend
  it, so it is back within a third of a lease, and changes until then are not pushed. The
  next change after the mark is back is pushed with complete totals.
- A worker dies. Its sockets are gone with it; its marks lapse within one lease. Until then
  its pages keep being pushed to nobody, which costs what the marks save, for that long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Protocol

from redis import exceptions as redis_errors

from appliance.errors import ServiceUnavailable
from appliance.storage.counter_store import watched_key

log = logging.getLogger("ovation.live")
CHUNK = 500  # marks per Redis round trip
RETRY_S = 1.0  # a failed renewal is tried again this soon

Page = tuple[str, str]  # (site, path)


class FollowedPages(Protocol):
    """What the leases need of the broker: the pages this worker's sockets follow."""

    def followed_pages(self) -> list[Page]: ...


class WatchedPages:
    """One per web worker: keeps the pages its sockets follow marked as watched in Redis."""

    def __init__(self, redis, followed: FollowedPages, ttl_s: float) -> None:
        self._redis = redis
        self._followed = followed
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._renew_s = ttl_s / 3
        self._trusted_s = ttl_s / 2  # a mark sent this recently has half a lease left
        self._sent_at: dict[Page, float] = {}  # page -> monotonic time its mark was sent
        self._marking: dict[Page, asyncio.Task] = {}  # marks being written now

    async def watch(self, site: str, paths: list[str]) -> None:
        """Return once every page is marked in Redis (call it after following them in the
        broker, so that renewals keep them marked, and before reading their totals)."""
        now = time.monotonic()
        waits: set[asyncio.Task] = set()
        to_mark: list[Page] = []
        for path in paths:
            page = (site, path)
            marking = self._marking.get(page)
            sent = self._sent_at.get(page)
            if marking is not None:
                waits.add(marking)
            elif sent is None or now - sent >= self._trusted_s:
                to_mark.append(page)
        if to_mark:
            task = asyncio.ensure_future(self._mark(to_mark))
            for page in to_mark:
                self._marking[page] = task
            task.add_done_callback(lambda done, pages=to_mark: self._marked(done, pages))
            waits.add(task)
        if waits:
            # Shielded: a socket closing mid-subscribe must not cancel a mark that another
            # subscribe of the same page waits for.
            await asyncio.shield(asyncio.gather(*waits))

    async def run(self, shutdown: asyncio.Event) -> None:
        """Renew the marks of the pages this worker's sockets follow, every third of a lease."""
        while not shutdown.is_set():
            wait_s = self._renew_s
            try:
                await self.renew()
            except Exception as exc:  # marks lapse only after a whole lease: retry soon
                log.warning(
                    "renewing the live marks of %d pages failed: %s",
                    len(self._followed.followed_pages()),
                    exc,
                )
                wait_s = min(wait_s, RETRY_S)
            try:
                await asyncio.wait_for(shutdown.wait(), timeout=wait_s)
            except TimeoutError:
                pass

    async def renew(self) -> None:
        """Mark every followed page again now, and forget marks too old to be trusted."""
        pages = self._followed.followed_pages()
        now = time.monotonic()
        for chunk in _chunks(pages, CHUNK):
            await self._write(chunk)
            for page in chunk:
                self._sent_at[page] = now
        for page in [page for page, sent in self._sent_at.items() if now - sent >= self._trusted_s]:
            del self._sent_at[page]

    async def _mark(self, pages: list[Page]) -> None:
        sent = time.monotonic()
        try:
            await self._write(pages)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise ServiceUnavailable(f"Redis is not reachable: {exc}") from exc
        for page in pages:
            self._sent_at[page] = max(sent, self._sent_at.get(page, sent))

    async def _write(self, pages: list[Page]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for site, path in pages:
            pipe.set(watched_key(site, path), "1", px=self._ttl_ms)
        await pipe.execute()

    def _marked(self, done: asyncio.Task, pages: list[Page]) -> None:
        for page in pages:
            if self._marking.get(page) is done:
                del self._marking[page]
        if not done.cancelled():
            done.exception()  # retrieved here: a waiter that went away may never ask


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
