"""SQL reads and writes of sites."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from appliance.storage.database import write_transaction
from appliance.storage.models import Page, Site


@dataclass(frozen=True)
class SiteRecord:
    """A site as the rest of the appliance sees it (no ORM objects leave storage)."""

    name: str
    title: str = ""
    origins: tuple[str, ...] = ()
    accept_unpublished_pages: bool = True
    reaction_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    moderation: str = "open"  # open | all | first_time | links
    owner_email: str = ""
    feed_url: str | None = None
    reactions: tuple[str, ...] | None = None  # the types shown, in order; None: the defaults
    rate_limits: dict[str, int] = field(default_factory=dict)  # per-site rate-limit overrides


def _record(row: Site) -> SiteRecord:
    return SiteRecord(name=row.name, title=row.title, origins=tuple(json.loads(row.origins)),
                      accept_unpublished_pages=row.accept_unpublished_pages,
                      reaction_options=json.loads(row.reaction_options),
                      moderation=row.moderation, owner_email=row.owner_email,
                      feed_url=row.feed_url,
                      reactions=tuple(json.loads(row.reactions)) if row.reactions else None,
                      rate_limits=json.loads(row.rate_limits or "{}"))


def _columns(record: SiteRecord) -> dict[str, Any]:
    return {"title": record.title, "origins": json.dumps(list(record.origins)),
            "accept_unpublished_pages": record.accept_unpublished_pages,
            "reaction_options": json.dumps(record.reaction_options),
            "moderation": record.moderation, "owner_email": record.owner_email,
            "feed_url": record.feed_url,
            "reactions": json.dumps(list(record.reactions)) if record.reactions is not None else "",
            "rate_limits": json.dumps(record.rate_limits)}


def get_site(database: pw.Database, name: str) -> SiteRecord | None:
    with database.connection_context():
        row = Site.get_or_none(Site.name == name)
        return _record(row) if row else None


def list_sites(database: pw.Database) -> list[tuple[SiteRecord, int]]:
    """Every site with its number of pages."""
    with database.connection_context():
        pages = pw.fn.COUNT(Page.id).alias("pages")
        query = (Site.select(Site, pages).join(Page, pw.JOIN.LEFT_OUTER)
                 .group_by(Site.id).order_by(Site.name))
        return [(_record(row), row.pages) for row in query]


def insert_site(database: pw.Database, record: SiteRecord) -> bool:
    """Create the site; False if one with that name exists already."""
    try:
        with database.connection_context(), write_transaction(database):
            Site.create(name=record.name, **_columns(record))
    except pw.IntegrityError:
        return False
    return True


def update_site(database: pw.Database, record: SiteRecord) -> bool:
    with database.connection_context():
        changed = (Site.update(**_columns(record))
                   .where(Site.name == record.name).execute())
        return changed > 0


def page_exists(database: pw.Database, site: str, path: str) -> bool:
    with database.connection_context():
        return (Page.select().join(Site)
                .where((Site.name == site) & (Page.path == path)).exists())
