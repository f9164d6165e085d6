"""Routes grouped by audience: public widget API, live WebSocket, health/metrics, pages."""

from __future__ import annotations

from quart import current_app

from web.runtime import WebRuntime


def runtime() -> WebRuntime:
    """The serving worker's runtime (opened in before_serving)."""
    return current_app.extensions["ovation"]
