"""Writing a live frame straight to a connection's socket, the same bytes for every subscriber.

Hypercorn's way for one text frame (ASGI send, its WebSocket stream, wsproto, its HTTP/1.1
protocol, its TCP server, asyncio's stream writer) cost about 22 µs per connection on the
benchmark machine, of which the socket write itself is about 8: 110 ms for an event to 5,000
subscribers. A final, unmasked, uncompressed text frame is the same bytes for every
connection, so the broker builds it once per event (`text_frame`) and, for each connection
that can take it, hands it to the connection's transport directly (`DirectWriter`).

That reaches into Hypercorn's objects, so it is used only when every link is exactly what this
code knows (`direct_writer` answers None otherwise, and the broker then sends the usual way),
only while the connection is open and negotiated no extension (a compressed frame must go
through wsproto), and only while the transport's buffer is short: a client that stops reading
is left to the usual way, which waits for it (tests/web/test_live_fanout.py checks that the
direct way is taken with the Hypercorn this project pins).

Frames written here and by Hypercorn never interleave: both write whole frames, each with one
`transport.write`, and asyncio keeps writes in order.
"""

from __future__ import annotations

import asyncio
import functools
import logging

log = logging.getLogger("ovation.live")
MAX_BUFFERED = 64 * 1024  # asyncio's default high-water mark: beyond it, the client lags


def text_frame(text: str) -> bytes:
    """A final text frame from server to client (RFC 6455: unmasked), no extension."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


class DirectWriter:
    """One connection's transport, and the Hypercorn stream that says whether it is open."""

    __slots__ = ("_stream", "_transport", "_connected")

    def __init__(self, stream, transport: asyncio.WriteTransport, connected) -> None:
        self._stream = stream
        self._transport = transport
        self._connected = connected

    def write(self, frame: bytes) -> bool | None:
        """True: written. None: the connection is closing, nothing to write to. False: the
        client lags (its buffer is full), so the frame must wait the usual way."""
        stream, transport = self._stream, self._transport
        if stream.closed or stream.state is not self._connected or transport.is_closing():
            return None
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            return False
        transport.write(frame)
        return True


def direct_writer(ws) -> DirectWriter | None:
    """The direct writer of an accepted Quart WebSocket served by Hypercorn over HTTP/1.1,
    or None when anything on the way is not as expected (another server, HTTP/2, an
    extension negotiated, a Quart or Hypercorn that changed)."""
    try:
        from hypercorn.asyncio.tcp_server import TCPServer
        from hypercorn.protocol.h11 import H11Protocol
        from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
        from quart.asgi import ASGIWebsocketConnection

        send = ws._send  # Quart: partial(ASGIWebsocketConnection.send_data, asgi_send)
        if not (isinstance(send, functools.partial)
                and isinstance(getattr(send.func, "__self__", None), ASGIWebsocketConnection)):
            return None
        stream = getattr(send.args[0], "__self__", None)  # the ASGI send: WSStream.app_send
        if not isinstance(stream, WSStream) or stream.state is not ASGIWebsocketState.CONNECTED:
            return None
        protocol = getattr(stream.send, "__self__", None)  # H11Protocol.stream_send
        server = getattr(getattr(protocol, "send", None), "__self__", None)
        if not isinstance(protocol, H11Protocol) or not isinstance(server, TCPServer):
            return None  # HTTP/2 (RFC 8441) or another arrangement: the usual way
        if stream.connection._proto.extensions:  # e.g. permessage-deflate: wsproto frames it
            return None
        transport = server.writer.transport
    except (ImportError, AttributeError, IndexError, TypeError) as exc:
        log.debug("no direct writer for a live connection: %s", exc)
        return None
    return DirectWriter(stream, transport, ASGIWebsocketState.CONNECTED)
