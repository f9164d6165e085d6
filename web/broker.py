"""In-process fan-out of live events to this worker's WebSocket connections.

Redis pub/sub brings every event to every web worker once; the broker hands it to each local
connection subscribed to that page (or to the whole site, for site-wide events). Each
connection has a bounded queue: a client too slow to read loses old updates, never the worker.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from appliance.events import LiveEvent

QUEUE_SIZE = 256


class Subscription:
    def __init__(self, site: str) -> None:
        self.site = site
        self.paths: set[str] = set()
        self.visitor: str | None = None  # visitor hash named by `subscribe`: notifications
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0

    def offer(self, event: LiveEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            self.queue.get_nowait()  # drop the oldest: totals are superseded by newer ones
            self.queue.put_nowait(event)


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

    def publish(self, event: LiveEvent) -> int:
        targets = (self._by_site.get(event.site, set()) if event.path is None
                   else self._by_page.get((event.site, event.path), set()))
        if event.visitor is not None:  # a personal notification: that visitor's pages only
            targets = {member for member in targets if member.visitor == event.visitor}
        for subscription in list(targets):
            subscription.offer(event)
        return len(targets)

    @property
    def connections(self) -> int:
        return sum(len(members) for members in self._by_site.values())
