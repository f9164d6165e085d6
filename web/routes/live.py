"""The live WebSocket: subscribe to pages, receive their totals as they change, interact.

Protocol (JSON text frames; see docs/api.md):
client -> server: subscribe {paths, visitor?}, unsubscribe {paths}, interact {...}, ping
server -> client: hello, subscribed {pages}, totals {path, totals}, result {...}, error
{code, message}, pong, and site-wide events such as new_post.
"""

from __future__ import annotations

import asyncio
import json
import logging

from pydantic import TypeAdapter, ValidationError
from quart import Blueprint, websocket

from appliance.errors import OriginNotAllowed, OvationError
from appliance.events import LiveEvent
from appliance.services.sites import origin_allowed
from web.broker import Subscription
from web.routes import runtime
from web.routes.comments import accepted_model, comment_input
from web.schemas import (
    ClientMessage,
    CommentMessage,
    InteractMessage,
    SubscribeMessage,
    UnsubscribeMessage,
)

live = Blueprint("live", __name__)
log = logging.getLogger("ovation.live")
MAX_SUBSCRIPTIONS = 200
_client_message = TypeAdapter(ClientMessage)


def _event_frame(event: LiveEvent) -> dict:
    if event.kind == "totals":
        return {"type": "totals", "path": event.path, "totals": event.data.get("totals", {})}
    return {"type": event.kind, "path": event.path, **event.data}


@live.websocket("/api/v1/sites/<site>/live")
async def live_socket(site: str) -> None:
    rt = runtime()
    record = await rt.sites.get(site)  # refused before the handshake with the usual JSON errors
    origin = websocket.headers.get("Origin")
    own = f"{websocket.scheme.replace('ws', 'http')}://{websocket.host}".lower()
    if not origin_allowed(record, origin, own):
        raise OriginNotAllowed(f"Origin {origin} is not allowed for site {site!r}.")
    await websocket.accept()
    subscription = Subscription(record.name)
    rt.broker.register(subscription)
    send_lock = asyncio.Lock()

    async def send(frame: dict) -> None:
        async with send_lock:
            await websocket.send(json.dumps(frame, separators=(",", ":")))

    async def forward_events() -> None:
        while True:
            event = await subscription.queue.get()
            await send(_event_frame(event))

    writer = asyncio.get_running_loop().create_task(forward_events())
    try:
        await send({"type": "hello", "site": record.name, "reactions": rt.registry.names()})
        while True:
            raw = await websocket.receive()
            await _handle(raw, record, subscription, send)
    finally:
        writer.cancel()
        rt.broker.unregister(subscription)
        await asyncio.gather(writer, return_exceptions=True)


async def _handle(raw, record, subscription: Subscription, send) -> None:
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
            pages = await rt.counters.totals(record, message.paths, message.visitor)
            for page in pages:
                rt.broker.subscribe(subscription, page.path)
            await send({"type": "subscribed", "pages": [
                {"path": p.path, "totals": p.totals, "visitor": p.visitor} for p in pages]})
        elif isinstance(message, UnsubscribeMessage):
            for raw_path in message.paths:
                rt.broker.unsubscribe(subscription, rt.counters.normalise(raw_path))
            await send({"type": "unsubscribed", "paths": message.paths})
        elif isinstance(message, CommentMessage):
            message_id = message.id
            submitted = await rt.comments.submit(record, comment_input(message),
                                                 websocket.remote_addr)
            await send({"type": "comment_accepted", "id": message.id,
                        "comment": accepted_model(submitted).model_dump()})
        elif isinstance(message, InteractMessage):
            message_id = message.id
            outcome = await rt.counters.record(record, message.path, message.reaction,
                                               message.action, message.amount, message.visitor)
            await send({"type": "result", "id": message.id, "path": outcome.page.path,
                        "totals": outcome.page.totals, "visitor": outcome.page.visitor,
                        "applied": outcome.applied})
        else:
            await send({"type": "pong"})
    except OvationError as exc:
        await send({"type": "error", "code": exc.code, "message": exc.message,
                    "id": message_id})
