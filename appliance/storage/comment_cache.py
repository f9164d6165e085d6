"""Redis side of comments: thread and count caches, edit-token records, limits and dedup.

| key | type | holds |
| --- | --- | --- |
| ov:thread:SITE|PATH | string (JSON) | the page's thread as the listener last built it; expires |
| ov:ccount:SITE|PATH | string | the page's approved-comment count; expires |
| ov:ctok:ID | hash | a new comment's edit-token hash, page and author, for the edit window |
| ov:rl:comment:SITE:KIND:HASH | string | comments posted in the current rate window |
| ov:dup:SITE|PATH|VISITOR|SHA | string | the same body from the same visitor on the same page |
"""

from __future__ import annotations

import json
from typing import Any

THREAD_TTL_S = 3600
COUNT_TTL_S = 86400


def thread_key(site: str, path: str) -> str:
    return f"ov:thread:{site}|{path}"


def count_key(site: str, path: str) -> str:
    return f"ov:ccount:{site}|{path}"


def token_key(comment_id: str) -> str:
    return f"ov:ctok:{comment_id}"


def rate_key(site: str, kind: str, value: str) -> str:
    return f"ov:rl:comment:{site}:{kind}:{value}"


def duplicate_key(site: str, path: str, visitor: str, body_sha: str) -> str:
    return f"ov:dup:{site}|{path}|{visitor}|{body_sha}"


def encode_thread(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, separators=(",", ":"))


def decode_thread(raw: str) -> list[dict[str, Any]]:
    return json.loads(raw)
