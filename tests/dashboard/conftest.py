"""Builders shared by the dashboard tests."""

from __future__ import annotations

import datetime as dt

from appliance.storage import comment_store
from appliance.storage.models import utcnow

# What a hostile commenter might try on a terminal: colour, clear screen, a window title, a
# hyperlink (OSC 8), an 8-bit CSI, a bell, a bidi override, and rich markup of every kind.
HOSTILE_TEXT = ("\x1b[31mred\x1b[0m \x1b[2J\x1b]0;owned\x07 \x1b]8;;https://evil.example\x1b\\"
                "link\x1b]8;;\x1b\\ \x9b2J \u202eevil [red]markup[/red] "
                "[link=https://evil.example]click[/link] [bold blink]x")
HOSTILE_NAME = "Mallory \x1b[5m[blink]name[/blink]"


def add_comment(database, comment_id: str, *, site: str = "blog", path: str = "/post",
                body: str = "Hello", author: str = "Ann", status: str = "approved",
                age_s: float = 0) -> None:
    created = utcnow() - dt.timedelta(seconds=age_s)
    comment_store.insert_comment(database, {
        "id": comment_id, "site": site, "path": path, "body_markdown": body,
        "body_html": f"<p>{comment_id}</p>", "status": status, "author_name": author,
        "created_at": created.isoformat()}, max_depth=4)
