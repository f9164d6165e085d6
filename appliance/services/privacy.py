"""A reader's data on request: export everything stored about one visitor id, or erase it.

Readers are known only by the visitor id their widget keeps in localStorage (and shows them);
Ovation stores it only as a per-site keyed hash, so a request must bring the id itself.
Erasing removes the link between the reader and their data: their per-visitor reaction state
and votes, and their comments (text and personal fields cleared, the thread keeps its shape).
Aggregate counts stay: they say nothing about anyone.
"""

from __future__ import annotations

from typing import Any

import peewee as pw
import redis

from appliance.services.moderation import refresh_page
from appliance.services.visitors import visitor_hash
from appliance.storage import comment_store
from appliance.storage import counter_store as keys
from appliance.storage.database import write_transaction
from appliance.storage.models import Comment, Page, Site


def _state_entries(client: redis.Redis, site: str, hashed: str):
    """(key, field, value) of every per-visitor state entry of this visitor on this site."""
    pattern = f"{keys.PREFIX}vs:{site}|*"
    for key in client.scan_iter(match=pattern, count=1000):
        for field, value in client.hscan_iter(key, match=f"*|{hashed}", count=1000):
            yield key, field, value


def _comments(database: pw.Database, site: str, hashed: str):
    return (Comment.select(Comment, Page.path).join(Page).join(Site)
            .where((Site.name == site) & (Comment.visitor_hash == hashed)))


def export_visitor(client: redis.Redis, database: pw.Database, key: bytes, site: str,
                   visitor_id: str) -> dict[str, Any]:
    hashed = visitor_hash(key, site, visitor_id)
    reactions = []
    for state_key, field, value in _state_entries(client, site, hashed):
        target = state_key.split("|", 1)[1]
        reaction = field.rsplit("|", 1)[0]
        reactions.append({"target": target, "reaction": reaction, "value": value})
    with database.connection_context():
        comments = [{
            "id": row.id, "path": row.page.path, "status": row.status,
            "author_name": row.author_name, "author_email": row.author_email,
            "author_website": row.author_website, "body_markdown": row.body_markdown,
            "created_at": row.created_at.isoformat() + "Z",
            "edited_at": row.edited_at.isoformat() + "Z" if row.edited_at else None,
        } for row in _comments(database, site, hashed).order_by(Comment.created_at)]
    return {"site": site, "visitor_hash": hashed, "reactions": sorted(
        reactions, key=lambda item: (item["target"], item["reaction"])), "comments": comments}


def erase_visitor(client: redis.Redis, database: pw.Database, key: bytes, site: str,
                  visitor_id: str) -> dict[str, int]:
    hashed = visitor_hash(key, site, visitor_id)
    entries = list(_state_entries(client, site, hashed))
    if entries:
        pipe = client.pipeline(transaction=False)
        for state_key, field, _value in entries:
            pipe.hdel(state_key, field)
        pipe.execute()
    with database.connection_context(), write_transaction(database):
        rows = list(_comments(database, site, hashed))
        if rows:
            (Comment.update(body_markdown="", body_html="", author_name="",
                            author_email="", author_website="", avatar_seed="",
                            visitor_hash="", ip_hash="", edit_token_hash="",
                            notify_replies=False)
             .where(Comment.id.in_([row.id for row in rows])).execute())
            # As an author's own delete: rejected and spam keep the moderator's verdict, and a
            # pending one stays out of the thread (set_status); neither becomes a placeholder
            # readers see, unless replies they see hang under it.
            comment_store.set_status(database, [row.id for row in rows
                                                if row.status in ("approved", "pending")],
                                     "deleted")
    for path in {row.page.path for row in rows}:
        refresh_page(client, database, site, path)
    return {"reaction_states": len(entries), "comments": len(rows)}
