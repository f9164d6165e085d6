"""The browser channel: a live push to the recipient's open pages, through every web worker.

The live event names the recipient's visitor hash; a web worker's broker hands it only to the
WebSocket connections whose `subscribe` message named that visitor. Pub/sub keeps nothing: a
recipient with no open page simply gets the e-mail (if any), so a publish counts as delivered.
"""

from __future__ import annotations

import redis

from appliance import events
from appliance.events import LiveEvent
from appliance.notify.queue import Delivery
from appliance.notify.templates import block_text, one_line, safe_link, summary

BROWSER_FIELDS = ("path", "comment_id", "parent_id")


def browser_frame_data(delivery: Delivery) -> dict:
    payload = delivery.payload
    return {"kind": delivery.kind, "idempotency_key": delivery.key,
            "message": summary(delivery.kind, payload),
            "author_name": one_line(payload.get("author_name"), 100),
            "text": block_text(payload.get("text"), 300),
            "url": safe_link(payload.get("comment_url") or payload.get("page_url")),
            **{name: payload.get(name) for name in BROWSER_FIELDS}}


class BrowserChannel:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def send(self, delivery: Delivery) -> None:
        event = LiveEvent("notification", delivery.site, None, browser_frame_data(delivery),
                          visitor=delivery.target)
        self.client.publish(events.LIVE_CHANNEL, event.encode())
