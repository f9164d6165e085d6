"""In-process fan-out of live events to this worker's WebSocket connections.

Redis pub/sub brings every event to every web worker once; the broker encodes its frame once
and writes those same bytes to each local connection subscribed to the page (or to the whole
site, for site-wide events): straight to the connection's socket where it can
(web/ws_direct.py), else through the connection's ASGI send.

A connection costs no task and no queue while it idles: a frame is written inline (an ASGI
send is driven only until it would wait), which fails only when the client stops reading and
the server's buffers for it are full. Only then does the connection get a writer task and a
bounded backlog: a client too slow to read loses its oldest frames (a `totals` frame carries
complete totals, so the newest one is always right), never the worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from appliance.events import LiveEvent
from web.ws_direct import DirectWriter, text_frame

log = logging.getLogger("ovation.live")
QUEUE_SIZE = 256  # frames kept for a client that stopped reading
YIELD_EVERY = 256  # connections written between two turns of the event loop

SendText = Callable[[str], Awaitable[None]]


def event_frame(event: LiveEvent) -> str:
    """The JSON text frame of a live event, as every subscriber receives it."""
    if event.kind == "totals":
        body = {"type": "totals", "path": event.path, "totals": event.data.get("totals", {})}
    else:
        body = {"type": event.kind, "path": event.path, **event.data}
    return json.dumps(body, separators=(",", ":"))


class Subscription:
    """One live connection: its site, the pages it follows, and how to write to it."""

    __slots__ = ("site", "paths", "visitor", "dropped", "_send", "_direct", "_backlog",
                 "_writer", "_held")

    def __init__(self, site: str, send: SendText, direct: DirectWriter | None = None) -> None:
        self.site = site
        self.paths: set[str] = set()
        self.visitor: str | None = None  # visitor hash named by `subscribe`: notifications
        self.dropped = 0
        self._send = send
        self._direct = direct
        self._backlog: deque[str] | None = None  # only while a write waits on the client
        self._writer: asyncio.Task | None = None
        self._held: deque[tuple[str, bytes | None]] | None = None  # see `hold`

    def hold(self) -> None:
        """Keep what is offered until `release`: while `subscribe` reads the totals it will
        send, the pushes of the pages it follows already must wait for that frame."""
        self._held = deque(maxlen=QUEUE_SIZE)

    def release(self) -> None:
        held, self._held = self._held, None
        for text, frame in held or ():
            self.offer(text, frame)

    def offer(self, text: str, frame: bytes | None = None) -> None:
        """Write `text` now if the connection takes it without waiting, else queue it.
        `frame`: the same as a WebSocket frame, for a connection written to directly."""
        if self._held is not None:
            self._held.append((text, frame))
            return
        if self._writer is not None:
            backlog = self._backlog
            if len(backlog) == QUEUE_SIZE:
                self.dropped += 1  # deque(maxlen) drops the oldest on append
            backlog.append(text)
            return
        if self._direct is not None and frame is not None:
            written = self._direct.write(frame)
            if written is not False:
                return  # written, or the connection is closing: nothing to do either way
            # The client lags: this frame, and any that follow it, wait the usual way.
        coroutine = self._send(text)
        try:
            waiting_on = coroutine.send(None)
        except StopIteration:
            return  # written: the usual case
        except Exception as exc:  # a connection closing under us; its handler cleans up
            log.debug("live frame not written: %s", exc)
            return
        self._backlog = deque(maxlen=QUEUE_SIZE)
        self._writer = asyncio.get_running_loop().create_task(
            self._drain(coroutine, waiting_on))

    async def write(self, text: str) -> None:
        """The connection's own frame (hello, subscribed, result, error, pong): straight to
        the socket where it takes it at once (an `interact` answered through Hypercorn's
        send path cost about 6 % more), else the usual way after any frames already waiting
        on the client. Unlike `offer`, it is never held or dropped, and a client that stops
        reading makes its own handler wait, so its requests back up instead of its answers."""
        direct = self._direct
        if direct is not None and self._writer is None and direct.write(text_frame(text)):
            return
        while self._writer is not None:  # frames offered before this one go first
            await asyncio.wait((self._writer,))
        await self._send(text)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()

    async def _drain(self, coroutine: Coroutine, waiting_on: Any) -> None:
        try:
            await _Resumed(coroutine, waiting_on)
            while self._backlog:
                await self._send(self._backlog.popleft())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("live frames not written: %s", exc)
        finally:
            self._writer = None
            self._backlog = None


class _Resumed:
    """Awaiting it continues a coroutine already stepped to its first suspension by hand.

    `Subscription.offer` runs a send eagerly (as Python 3.12's eager tasks do; this runs on
    3.11), so the thousands of writes of one event need no task each. When a write does wait,
    this hands the future it waits on to a task, which resumes the coroutine as if it had
    driven it from the start.
    """

    __slots__ = ("_coroutine", "_waiting_on")

    def __init__(self, coroutine: Coroutine, waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, waiting_on = self._coroutine, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # cancellation included: passed to the coroutine
                try:
                    waiting_on = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    waiting_on = coroutine.send(sent)
                except StopIteration as stop:
                    return stop.value


class Broker:
    def __init__(self) -> None:
        self._by_page: dict[tuple[str, str], set[Subscription]] = defaultdict(set)
        self._by_site: dict[str, set[Subscription]] = defaultdict(set)

    def register(self, subscription: Subscription) -> None:
        self._by_site[subscription.site].add(subscription)

    def subscribe(self, subscription: Subscription, path: str) -> None:
        subscription.paths.add(path)
        self._by_page[(subscription.site, path)].add(subscription)

    def unsubscribe(self, subscription: Subscription, path: str) -> None:
        subscription.paths.discard(path)
        members = self._by_page.get((subscription.site, path))
        if members is not None:
            members.discard(subscription)
            if not members:
                del self._by_page[(subscription.site, path)]

    def unregister(self, subscription: Subscription) -> None:
        for path in list(subscription.paths):
            self.unsubscribe(subscription, path)
        members = self._by_site.get(subscription.site)
        if members is not None:
            members.discard(subscription)
            if not members:
                del self._by_site[subscription.site]
        subscription.close()

    def targets(self, event: LiveEvent) -> list[Subscription]:
        members = (self._by_site.get(event.site) if event.path is None
                   else self._by_page.get((event.site, event.path)))
        if not members:
            return []
        if event.visitor is not None:  # a personal notification: that visitor's pages only
            return [member for member in members if member.visitor == event.visitor]
        return list(members)

    async def publish(self, event: LiveEvent) -> int:
        """Write the event's frame to every local subscriber; returns how many there were.

        The frame is encoded once. The loop yields now and then, so that a page with thousands
        of subscribers does not hold up the worker's other requests for the whole fan-out.
        """
        targets = self.targets(event)
        if not targets:
            return 0
        text = event_frame(event)
        frame = text_frame(text)
        for number, subscription in enumerate(targets, 1):
            subscription.offer(text, frame)
            if number % YIELD_EVERY == 0 and number < len(targets):
                await asyncio.sleep(0)
        return len(targets)

    def followed_pages(self) -> list[tuple[str, str]]:
        """(site, path) of every page some connection of this worker follows."""
        return list(self._by_page)

    @property
    def connections(self) -> int:
        return sum(len(members) for members in self._by_site.values())
