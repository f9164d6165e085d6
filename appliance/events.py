"""Names of the Redis streams and pub/sub channels, and the shape of what travels on them.

Streams (durable, consumer groups, acknowledged after the work is committed) carry hand-offs
between processes. Pub/sub carries only ephemeral live fan-out to web workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Durable streams.
PUBLISH_STREAM = "ov:stream:publish"
SUBMISSION_STREAM = "ov:stream:submissions"
NOTIFICATION_STREAM = "ov:stream:notifications"
LISTENER_GROUP = "listener"
NOTIFIER_GROUP = "notifier"

# Ephemeral fan-out to every web worker.
LIVE_CHANNEL = "ov:live"


@dataclass(frozen=True)
class LiveEvent:
    """One live message for the open pages of `site` at `path` (path None: the whole site)."""

    kind: str
    site: str
    path: str | None
    data: dict[str, Any]
    # A visitor hash: only that visitor's open pages of the site get it (notifications).
    visitor: str | None = None

    def encode(self) -> str:
        body = {"kind": self.kind, "site": self.site, "path": self.path, "data": self.data}
        if self.visitor:
            body["visitor"] = self.visitor
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | bytes) -> LiveEvent:
        body = json.loads(raw)
        return cls(kind=body["kind"], site=body["site"], path=body.get("path"),
                   data=body.get("data") or {}, visitor=body.get("visitor") or None)
