"""The live WebSocket: subscribe to pages, receive their totals as they change, interact.

Protocol (JSON text frames; see docs/api.md):
client -> server: subscribe {paths, visitor?}, unsubscribe {paths}, interact {...}, ping
server -> client: hello, subscribed {pages}, totals {path, totals}, result {...}, error
{code, message}, pong, and site-wide events such as new_post.
"""

from __future__ import annotations

import json
import logging
import time

from pydantic import TypeAdapter, ValidationError
from quart import Blueprint, websocket

from appliance.errors import OriginNotAllowed, OvationError, RateLimited
from appliance.services.client_address import client_address
from appliance.services.sites import origin_allowed
from appliance.services.visitors import visitor_hash
from web.broker import SendText, Subscription
from web.routes import runtime
from web.routes.comments import accepted_model, comment_input
from web.routes.site_access import rate_charge
from web.schemas import (
    ClientMessage,
    CommentMessage,
    InteractMessage,
    SubscribeMessage,
    UnsubscribeMessage,
)
from web.ws_direct import direct_writer
from web.ws_trim import trim_accepted

live = Blueprint("live", __name__)
log = logging.getLogger("ovation.live")
MAX_SUBSCRIPTIONS = 200
_client_message = TypeAdapter(ClientMessage)


@live.websocket("/api/v1/sites/<site>/live")
async def live_socket(site: str) -> None:
    rt = runtime()
    record = await rt.sites.get(site)  # refused before the handshake with the usual JSON errors
    origin = websocket.headers.get("Origin")
    own = f"{websocket.scheme.replace('ws', 'http')}://{websocket.host}".lower()
    if not origin_allowed(record, origin, own):
        raise OriginNotAllowed(f"Origin {origin} is not allowed for site {site!r}.")
    address = client_address(websocket.remote_addr, websocket.headers,
                             rt.settings.trusted_proxy_networks) or ""
    if rt.ws_connections.get(address, 0) >= rt.settings.ws_connections_per_ip:
        raise RateLimited(f"At most {rt.settings.ws_connections_per_ip} live connections per "
                          "address.", 10)
    rt.ws_connections[address] = rt.ws_connections.get(address, 0) + 1
    try:
        await _serve_socket(rt, record, address)
    finally:
        rt.ws_connections[address] -= 1
        if not rt.ws_connections[address]:
            del rt.ws_connections[address]


async def _serve_socket(rt, record, address: str) -> None:
    await websocket.accept()
    connection = websocket._get_current_object()
    trim_accepted(connection)  # memory per idle connection: see web/ws_trim.py
    send_text = _text_sender(connection)
    subscription = Subscription(record.name, send_text, direct_writer(connection))
    rt.broker.register(subscription)

    async def send(frame: dict) -> None:
        # No lock: each frame reaches the socket whole and in call order (Subscription.write).
        await subscription.write(json.dumps(frame, separators=(",", ":")))

    try:
        shown = [reaction.name for reaction in rt.counters.layout(record)]
        await send({"type": "hello", "site": record.name, "reactions": shown})
        bucket = TokenBucket(rate_per_s=rt.settings.ws_messages_per_s,
                             burst=rt.settings.ws_messages_per_s * 5)
        while True:
            raw = await websocket.receive()
            if not bucket.take():
                await send({"type": "error", "code": "rate_limited",
                            "message": "Too many messages; slow down."})
                continue
            await _handle(raw, record, subscription, send, address)
    finally:
        rt.broker.unregister(subscription)


def _text_sender(ws) -> SendText:
    """The connection's ASGI send of a text frame. Quart's public `Websocket.send` yields to
    the event loop before every frame, which would cost one loop turn per subscriber per
    event and keep the broker from writing a frame inline; `_send` is what it then calls."""
    send = getattr(ws, "_send", None)
    return send if callable(send) else ws.send


class TokenBucket:
    """Per-connection message budget (in-process: it dies with the connection)."""

    __slots__ = ("rate_per_s", "burst", "tokens", "updated")  # one per open connection

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


async def _handle(raw, record, subscription: Subscription, send, address: str = "") -> None:
    rt = runtime()
    message_id = None
    try:
        try:
            message = _client_message.validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "message"
            await send({"type": "error", "code": "invalid_input",
                        "message": f"{where}: {first['msg']}"})
            return
        if isinstance(message, SubscribeMessage):
            if len(subscription.paths) + len(message.paths) > MAX_SUBSCRIPTIONS:
                await send({"type": "error", "code": "too_many_subscriptions",
                            "message": f"At most {MAX_SUBSCRIPTIONS} pages per connection."})
                return
            # Follow the pages and mark them watched in Redis before reading their totals,
            # and hold their pushes until the `subscribed` frame is out. Following them after
            # the read lost a change pushed during it for good (found by tests/reliability);
            # an interaction before the mark pushes nothing (nobody watched the page), so the
            # mark must be in Redis before the read includes the interactions it missed (see
            # web/watched_pages.py); a push written before the frame would be overwritten by
            # the frame's older totals.
            paths = list(dict.fromkeys(rt.counters.normalise(raw) for raw in message.paths))
            added = [path for path in paths if path not in subscription.paths]
            subscription.hold()
            try:
                for path in added:
                    rt.broker.subscribe(subscription, path)
                await rt.watched.watch(record.name, paths)
                pages = await rt.counters.totals(record, message.paths, message.visitor)
                if message.visitor:  # this visitor's own notifications (replies) come here
                    subscription.visitor = visitor_hash(rt.settings.hashing_key(),
                                                        record.name, message.visitor)
                await send({"type": "subscribed", "pages": [
                    {"path": p.path, "totals": p.totals, "visitor": p.visitor} for p in pages]})
            except BaseException:
                for path in added:
                    rt.broker.unsubscribe(subscription, path)
                raise
            finally:
                subscription.release()
        elif isinstance(message, UnsubscribeMessage):
            for raw_path in message.paths:
                rt.broker.unsubscribe(subscription, rt.counters.normalise(raw_path))
            await send({"type": "unsubscribed", "paths": message.paths})
        elif isinstance(message, CommentMessage):
            message_id = message.id
            submitted = await rt.comments.submit(record, comment_input(message), address)
            await send({"type": "comment_accepted", "id": message.id,
                        "comment": accepted_model(submitted).model_dump()})
        elif isinstance(message, InteractMessage):
            message_id = message.id
            # The charge runs inside the interaction's Redis script: one round trip.
            charge = await rate_charge("interactions", record, message.visitor, address)
            outcome = await rt.counters.record(record, message.path, message.reaction,
                                               message.action, message.amount, message.visitor,
                                               message.choice, message.score, limit=charge)
            await send({"type": "result", "id": message.id, "path": outcome.page.path,
                        "totals": outcome.page.totals, "visitor": outcome.page.visitor,
                        "applied": outcome.applied})
        else:
            await send({"type": "pong"})
    except OvationError as exc:
        await send({"type": "error", "code": exc.code, "message": exc.message,
                    "id": message_id})
