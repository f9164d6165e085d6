"""Dropping what an accepted live connection no longer needs: memory per idle connection.

An idle live connection is mostly Hypercorn's and Quart's objects (bench/targets.md, "Memory
per connection"). Measured with tracemalloc on 1,000 idle subscribers sending a browser's
headers (about 37 KB of Python objects each), two things kept there serve nothing once the
handshake is answered:

- the request's headers, twice: Hypercorn's ASGI scope keeps them as bytes pairs and Quart's
  `Websocket` as a Werkzeug `Headers` of str pairs (about 4.5 KB). The live handler reads
  Origin, Host and the client's address before it accepts; nothing reads them afterwards
  (errors are logged with the path only; the rate limits get the address computed before);
- empty `collections.deque`s: every asyncio Event, Queue and stream protocol makes its own,
  and an empty deque costs about 760 bytes (it allocates a block of 64 slots at once). A
  connection has eleven: Hypercorn's and Quart's queues (items, getters, putters, and an Event
  for `join`), Hypercorn's `can_read` Event, the stream writer's drain waiters, wsproto's
  event list. Those that hold at most a few items become lists (56 bytes): waiters (one task
  waits on each), the items of Hypercorn's bounded queue, wsproto's events (only the closing
  one goes there). Quart's queue of received messages is unbounded and keeps its deque.

Plus the handshake's parsed lists (Hypercorn keeps them to answer it, once). Together: about
11 KB of Python objects less per connection (tracemalloc, 37 -> 26 KB), and 39-40.6 -> 27-29
KB of web worker RSS per idle connection in `bench/live_fanout.py` at 1,000 and 5,000. Real
browsers also send the site's cookies for the Ovation host, kept twice until then.

`trim_accepted` reaches into Hypercorn's, Quart's, wsproto's and asyncio's objects, so each
step checks that what it finds is exactly what it knows and otherwise leaves it as it is; it
answers which steps it applied, and tests/web/test_ws_trim.py checks that all of them apply
with the versions this project pins.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging

log = logging.getLogger("ovation.live")
SHORT_QUEUE_MAX = 64  # a bounded asyncio queue up to this size may keep its items in a list

# The steps, as `trim_accepted` names them.
REQUEST_HEADERS = "request_headers"  # Quart's Websocket.headers
SCOPE_HEADERS = "scope_headers"  # the ASGI scope's headers (Hypercorn's and Quart's scope)
HANDSHAKE = "handshake"  # Hypercorn's parsed handshake
EVENTS = "events"  # waiters of the asyncio Events of both queues and of H11Protocol.can_read
QUART_QUEUE = "quart_queue"  # getters and putters of Quart's queue of received messages
APP_QUEUE = "app_queue"  # getters, putters and items of Hypercorn's bounded ASGI queue
DRAIN = "drain"  # the stream writer's drain waiters
WSPROTO = "wsproto"  # wsproto's pending events
ALL_STEPS = frozenset({REQUEST_HEADERS, SCOPE_HEADERS, HANDSHAKE, EVENTS, QUART_QUEUE,
                       APP_QUEUE, DRAIN, WSPROTO})


class ShortDeque(list):
    """What asyncio's queues and wsproto call on their deques (append, popleft, remove, len,
    iteration), on a list: 56 bytes where an empty deque takes 760. Only for what holds a
    handful of items: `popleft` moves the rest."""

    __slots__ = ()

    def popleft(self):
        return self.pop(0)


def trim_accepted(ws) -> frozenset[str]:
    """Drop what the accepted Quart WebSocket `ws` (served by Hypercorn over HTTP/1.1) keeps
    and no longer needs; the names of the steps applied. Call it right after `accept`: the
    request's headers are gone afterwards (`ws.headers` is empty)."""
    applied: set[str] = set()
    try:
        connection, stream, protocol, server = _parts(ws)
    except (ImportError, AttributeError, IndexError, TypeError) as exc:
        log.debug("live connection not trimmed: %s", exc)
        return frozenset()
    if connection is None:
        return frozenset()
    if _drop_request_headers(ws):
        applied.add(REQUEST_HEADERS)
    if _drop_scope_headers(ws, connection, stream):
        applied.add(SCOPE_HEADERS)
    quart_queue = connection.queue
    if _shorten_queue(quart_queue, items=False):
        applied.add(QUART_QUEUE)
    events = [getattr(quart_queue, "_finished", None)]
    if stream is not None:
        if _drop_handshake(stream):
            applied.add(HANDSHAKE)
        app_queue = getattr(stream.app_put, "__self__", None)  # app_put: the queue's put
        if _shorten_queue(app_queue, items=True):
            applied.add(APP_QUEUE)
        events.append(getattr(app_queue, "_finished", None))
        if _shorten_wsproto(getattr(stream, "connection", None)):
            applied.add(WSPROTO)
    if protocol is not None:
        events.append(getattr(protocol.can_read, "_event", None))  # Hypercorn's EventWrapper
    if server is not None:
        writer = server.writer
        if (type(writer) is asyncio.StreamWriter
                and type(writer._protocol) is asyncio.StreamReaderProtocol
                and _shorten(writer._protocol, "_drain_waiters", list)):
            applied.add(DRAIN)
    # Waiters of an Event are only appended, removed and iterated over: a list does.
    if all([type(event) is asyncio.Event and _shorten(event, "_waiters", list)
            for event in events]):
        applied.add(EVENTS)
    return frozenset(applied)


def _parts(ws):
    """Quart's ASGI connection behind `ws`, and Hypercorn's WSStream, H11Protocol and
    TCPServer when it is served that way (each None when not as expected)."""
    from hypercorn.asyncio.tcp_server import TCPServer
    from hypercorn.protocol.h11 import H11Protocol
    from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
    from quart.asgi import ASGIWebsocketConnection

    send = ws._send  # Quart: partial(ASGIWebsocketConnection.send_data, asgi_send)
    if not isinstance(send, functools.partial):
        return None, None, None, None
    connection = getattr(send.func, "__self__", None)
    if not isinstance(connection, ASGIWebsocketConnection) or not connection._accepted:
        return None, None, None, None
    stream = getattr(send.args[0], "__self__", None) if send.args else None  # WSStream.app_send
    if not isinstance(stream, WSStream) or stream.state is not ASGIWebsocketState.CONNECTED:
        return connection, None, None, None
    protocol = getattr(stream.send, "__self__", None)  # H11Protocol.stream_send
    if not isinstance(protocol, H11Protocol):
        return connection, stream, None, None  # HTTP/2 (RFC 8441)
    server = getattr(protocol.send, "__self__", None)  # TCPServer.protocol_send
    return connection, stream, protocol, server if isinstance(server, TCPServer) else None


def _drop_request_headers(ws) -> bool:
    from werkzeug.datastructures import Headers

    if type(ws.headers) is not Headers:
        return False
    ws.headers = Headers()  # remote_addr, read from them, is an attribute of its own
    return True


def _drop_scope_headers(ws, connection, stream) -> bool:
    """One scope dict is shared by Hypercorn's stream, Quart's connection and `ws`; after
    the handshake Hypercorn reads it only to log an access, which it did when accepting."""
    scope = connection.scope
    if scope is not ws.scope or (stream is not None and stream.scope is not scope):
        return False
    if not isinstance(scope.get("headers"), list):
        return False
    scope["headers"] = ()
    return True


def _drop_handshake(stream) -> bool:
    """Hypercorn's parsed handshake serves to answer it; afterwards only `accepted` is read."""
    from hypercorn.protocol.ws_stream import Handshake

    handshake = getattr(stream, "handshake", None)
    if type(handshake) is not Handshake or handshake.accepted is not True:
        return False
    handshake.connection_tokens = handshake.extensions = handshake.subprotocols = None
    handshake.key = None
    return True


def _shorten_queue(queue, items: bool) -> bool:
    """A queue's getters and putters (one task gets, one puts) on lists; its items too when
    `items` and the queue is bounded to a few."""
    if type(queue) is not asyncio.Queue:
        return False
    if items and not 0 < queue.maxsize <= SHORT_QUEUE_MAX:
        return False
    names = ["_getters", "_putters", *(["_queue"] if items else [])]
    if not all(_is_plain_deque(getattr(queue, name, None)) for name in names):
        return False
    for name in names:
        setattr(queue, name, ShortDeque(getattr(queue, name)))
    return True


def _shorten_wsproto(connection) -> bool:
    """wsproto's pending events: only the closing event of a lost connection waits there."""
    from wsproto.connection import Connection

    return type(connection) is Connection and _shorten(connection, "_events", ShortDeque)


def _shorten(owner, name: str, replacement: type) -> bool:
    """`owner.name`, a plain deque, replaced by the same items in `replacement`."""
    current = getattr(owner, name, None)
    if not _is_plain_deque(current):
        return False
    setattr(owner, name, replacement(current))
    return True


def _is_plain_deque(value) -> bool:
    return type(value) is collections.deque and value.maxlen is None
