"""Decline permessage-deflate on Ovation's WebSockets.

Browsers offer permessage-deflate on every WebSocket, and Hypercorn accepts it whenever it is
offered: it has no setting for it (pgjones/hypercorn#307). Negotiated, it keeps a zlib
compressor and decompressor per connection and compresses every frame for every connection
separately. Measured with `bench/live_fanout.py` (one worker, 1,000 idle subscribers): about
149 KB of server memory per connection with it, 47 KB without, and the fan-out of one event
compresses it once per subscriber. Live frames are small JSON (a `totals` frame is about 100
bytes), so compression would save a few dozen bytes a frame: not worth it.

Hypercorn builds the extensions it supports when it answers a handshake, from the name
`PerMessageDeflate` in its `ws_stream` module; this replaces that name with an extension of the
same name that declines every offer, so the answer carries no `Sec-WebSocket-Extensions` and
the connection sends and receives uncompressed frames, as RFC 7692 allows.
"""

from __future__ import annotations

import logging

from wsproto.extensions import Extension

log = logging.getLogger("ovation.web")


class DeclinedPerMessageDeflate(Extension):
    """permessage-deflate, known by name so that offers of it are answered: by declining."""

    name = "permessage-deflate"

    def offer(self) -> bool:  # a server never offers; required by the base class
        return False

    def accept(self, offer: str) -> None:
        return None


def decline_permessage_deflate() -> bool:
    """Make this process's Hypercorn decline permessage-deflate; False if it cannot tell how
    (a Hypercorn that no longer builds it this way), in which case compression may be used."""
    try:
        from hypercorn.protocol import ws_stream
    except ImportError:
        return False
    if not hasattr(ws_stream, "PerMessageDeflate"):
        log.warning("this Hypercorn does not name PerMessageDeflate; WebSocket compression "
                    "is left as Hypercorn decides")
        return False
    ws_stream.PerMessageDeflate = DeclinedPerMessageDeflate
    return True
