"""`platformctl export` (everything readers wrote, as JSON) and `import` (that JSON, Disqus,
WordPress, Isso).

An import writes in one transaction straight to SQL, like the listener does: bodies rendered
and sanitised by services/rendering.py, names cleaned, pages created with ensure_pages. Comment
ids are stable (an Ovation export keeps its own; other sources get ids derived from theirs), so
importing the same file twice imports nothing the second time. Afterwards each touched page's
caches are refreshed through services/moderation.refresh_page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import peewee as pw

from appliance import __version__
from appliance.errors import InvalidImport, UnknownSite
from appliance.operations.importers import EXPORT_FORMAT, ImportBatch, ImportedComment, derived_id
from appliance.services.rendering import clean_text, render_markdown
from appliance.settings import Settings
from appliance.storage.counter_sql import ensure_pages
from appliance.storage.database import write_transaction
from appliance.storage.models import Comment, Counter, Page, Site

Progress = Callable[[int, int], None]
EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")


@dataclass
class ImportSummary:
    format: str
    dry_run: bool
    sites_created: list[str] = field(default_factory=list)
    pages: int = 0
    comments_in_file: int = 0
    imported: Tally = field(default_factory=Tally)  # status -> count
    already_present: int = 0
    counters_imported: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def imported_total(self) -> int:
        return sum(self.imported.values())


# -- export ------------------------------------------------------------------------------------

def export_document(database: pw.Database, site: str | None = None,
                    progress: Progress | None = None) -> dict:
    with database.connection_context():
        sites = Site.select().order_by(Site.name)
        if site:
            sites = sites.where(Site.name == site)
            if not sites.exists():
                raise UnknownSite(f"No site is named {site!r}.")
        total = (Comment.select().join(Page).join(Site)
                 .where((Site.name == site) if site else True).count())
        done = 0
        document: dict = {"format": EXPORT_FORMAT, "version": 1,
                          "exported_at": dt.datetime.now(dt.UTC).isoformat(),
                          "ovation_version": __version__, "sites": []}
        for site_row in sites:
            counters: dict[int, dict[str, int]] = {}
            for page_id, reaction, total_count in (
                    Counter.select(Counter.page, Counter.reaction, Counter.total)
                    .join(Page).where(Page.site == site_row.id).tuples()):
                counters.setdefault(page_id, {})[reaction] = total_count
            comments: dict[int, list[dict]] = {}
            for row in (Comment.select().join(Page).where(Page.site == site_row.id)
                        .order_by(Comment.created_at, Comment.id)):
                comments.setdefault(row.page_id, []).append(_comment_entry(row))
                done += 1
                if progress:
                    progress(done, total)
            pages = [{"path": page.path, "title": page.title,
                      "published_at": _iso(page.published_at),
                      "counters": counters.get(page.id, {}),
                      "comments": comments.get(page.id, [])}
                     for page in Page.select().where(Page.site == site_row.id)
                     .order_by(Page.path)]
            document["sites"].append({"name": site_row.name, "title": site_row.title,
                                      "origins": json.loads(site_row.origins or "[]"),
                                      "pages": pages})
    return document


def _comment_entry(row: Comment) -> dict:
    return {"id": row.id, "parent_id": row.parent_id, "author_name": row.author_name,
            "author_email": row.author_email, "author_website": row.author_website,
            "body_markdown": row.body_markdown, "status": row.status,
            "created_at": _iso(row.created_at), "edited_at": _iso(row.edited_at),
            "votes_up": row.votes_up, "votes_down": row.votes_down}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


# -- import -----------------------------------------------------------------------------------

def import_batch(settings: Settings, database: pw.Database, batch: ImportBatch,
                 dry_run: bool, progress: Progress | None = None) -> ImportSummary:
    from appliance.services.sites import normalise_origin, validate_site_name

    summary = ImportSummary(batch.format, dry_run, skipped=list(batch.skipped),
                            pages=len(batch.pages), comments_in_file=len(batch.comments))
    for site in batch.sites:
        validate_site_name(site.name)
        site.origins = [normalise_origin(origin) for origin in site.origins]
    rows = [_row(settings, batch, site, comment) for site, comment in batch.comments]
    by_source = {(site, comment.source_id): row["id"]
                 for (site, comment), row in zip(batch.comments, rows, strict=True)}
    with database.connection_context(), write_transaction(database) as transaction:
        existing_sites = {row.name for row in Site.select(Site.name)}
        for site in batch.sites:
            if site.name not in existing_sites:
                Site.insert(name=site.name, title=site.title,
                            origins=json.dumps(site.origins)).execute()
                summary.sites_created.append(site.name)
        needed = {site for site, _ in batch.pages} | {site for site, _ in batch.comments}
        missing = needed - existing_sites - set(summary.sites_created)
        if missing:
            raise UnknownSite(f"No site is named {sorted(missing)[0]!r}: create it first with "
                              f"`platformctl site add {sorted(missing)[0]}`.")
        page_ids = ensure_pages(set(batch.pages)
                                | {(site, c.path) for site, c in batch.comments})
        for (site, path), title in batch.pages.items():
            if title:
                (Page.update(title=title[:500])
                 .where((Page.id == page_ids[(site, path)]) & (Page.title == "")).execute())
        present = _existing_ids([row["id"] for row in rows])
        summary.already_present = len(present)
        max_depth = settings.comment_max_depth
        placed: dict[str, tuple[str | None, int]] = {
            row.id: (row.parent_id, row.depth)
            for row in Comment.select(Comment.id, Comment.parent, Comment.depth)
            .where(Comment.id.in_(list(present)))} if present else {}
        for number, ((site, comment), row) in enumerate(
                _parents_first(batch.comments, rows, by_source), start=1):
            if row["id"] in present:
                continue
            parent_id = by_source.get((site, comment.parent_source_id)) \
                if comment.parent_source_id else None
            row["parent"], row["depth"] = _placement(parent_id, placed, max_depth)
            row["page"] = page_ids[(site, comment.path)]
            placed[row["id"]] = (row["parent"], row["depth"])
            Comment.insert(**row).execute()
            summary.imported[row["status"]] += 1
            if progress:
                progress(number, len(rows))
        summary.counters_imported = _import_counters(batch, page_ids)
        if dry_run:
            transaction.rollback()
    if not dry_run:
        refresh_caches(settings, database, batch)
    return summary


def _row(settings: Settings, batch: ImportBatch, site: str, comment: ImportedComment) -> dict:
    comment_id = comment.id or derived_id(batch.format, site, comment.source_id)
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", comment_id):
        raise InvalidImport(f"comment {comment.source_id}: id {comment_id!r} is not a valid "
                            "comment id")
    body = comment.body_markdown.replace("\x00", "\ufffd").strip()
    if len(body) > settings.comment_max_length * 4:
        raise InvalidImport(f"comment {comment.source_id}: the body is longer than "
                            f"{settings.comment_max_length * 4} characters")
    email = comment.author_email.strip()
    email = email if len(email) <= 254 and EMAIL.match(email) else ""
    return {
        "id": comment_id, "author_name": clean_text(comment.author_name)[:100],
        "author_email": email, "author_website": _website(comment.author_website),
        "avatar_seed": _avatar(settings, email, site, comment.source_id),
        "body_markdown": body, "body_html": render_markdown(body) if body else "",
        "status": comment.status, "created_at": comment.created_at,
        "edited_at": comment.edited_at, "votes_up": max(0, comment.votes_up),
        "votes_down": max(0, comment.votes_down),
    }


def _website(value: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    if (parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 500
            or re.search(r"[\s\x00-\x1f\x7f<>\"'`\\]", value)):
        return ""  # an imported author keeps their comment, not a link we would refuse
    return value


def _avatar(settings: Settings, email: str, site: str, source_id: str) -> str:
    seed = email.lower() if email else f"import|{site}|{source_id}"
    return hmac.new(settings.hashing_key(), seed.encode(), hashlib.sha256).hexdigest()[:16]


def _existing_ids(ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found |= {row.id for row in Comment.select(Comment.id).where(Comment.id.in_(chunk))}
    return found


def _parents_first(comments, rows, by_source):
    """Order comments so every parent is inserted before its replies (a file may list a reply
    first, and dates are not to be trusted to order them)."""
    pending = list(zip(comments, rows, strict=True))
    done: set[str] = set()
    ids = {row["id"] for row in rows}
    while pending:
        progressed, rest = [], []
        for (site, comment), row in pending:
            parent = by_source.get((site, comment.parent_source_id)) \
                if comment.parent_source_id else None
            if parent is None or parent in done or parent not in ids:
                progressed.append(((site, comment), row))
                done.add(row["id"])
            else:
                rest.append(((site, comment), row))
        if not progressed:  # a cycle of replies: break it rather than loop
            (site, comment), row = rest.pop(0)
            comment.parent_source_id = None
            progressed.append(((site, comment), row))
            done.add(row["id"])
        yield from progressed
        pending = rest


def _placement(parent_id: str | None, placed: dict[str, tuple[str | None, int]],
               max_depth: int) -> tuple[str | None, int]:
    """Like the listener: replies deeper than max_depth attach at the deepest level."""
    if not parent_id or parent_id not in placed:
        return None, 0
    while placed[parent_id][1] >= max_depth - 1 and placed[parent_id][0]:
        parent_id = placed[parent_id][0]
    parent_depth = placed[parent_id][1]
    if parent_depth >= max_depth - 1:
        return placed[parent_id][0], parent_depth
    return parent_id, parent_depth + 1


def _import_counters(batch: ImportBatch, page_ids: dict[tuple[str, str], int]) -> int:
    """Counter totals of an Ovation export, for pages that have none yet (the flusher adds to
    them from then on; a page that already counts keeps its own totals)."""
    imported = 0
    for key, totals in batch.counters.items():
        page_id = page_ids[key]
        if Counter.select().where(Counter.page == page_id).exists():
            continue
        for reaction, total in totals.items():
            (Counter.insert(page=page_id, reaction=reaction[:64], total=total)
             .on_conflict(conflict_target=[Counter.page, Counter.reaction],
                          update={Counter.total: Counter.total + total}).execute())
            imported += 1
    return imported


def refresh_caches(settings: Settings, database: pw.Database, batch: ImportBatch) -> None:
    """Rebuild the touched pages' comment caches and forget their cached SQL totals."""
    from appliance.operations.redis_access import operation_redis
    from appliance.services.moderation import refresh_page
    from appliance.storage import counter_store as keys

    pages = set(batch.pages) | {(site, comment.path) for site, comment in batch.comments}
    with operation_redis(settings) as client:
        if client is None:
            return  # caches expire on their own
        for site, path in sorted(pages):
            refresh_page(client, database, site, path)
            client.delete(keys.sql_cache_key(keys.page_member(site, path)))
