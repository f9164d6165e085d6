"""An app served by Hypercorn inside the test's own event loop, as `platformctl serve web`
serves it (Hypercorn's protocol objects, not Quart's test client), for the tests that reach
into a live connection's server-side objects."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tests.conftest import free_port


@dataclass
class InProcessServer:
    port: int
    stop: asyncio.Event  # set: Hypercorn stops (closing open connections after its grace)


@contextlib.asynccontextmanager
async def served_by_hypercorn(app) -> AsyncIterator[InProcessServer]:
    """`app` served on a free loopback port, listening when the block starts."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0.01
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    try:
        for _ in range(100):  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield InProcessServer(port, stop)
    finally:
        stop.set()
        await server
