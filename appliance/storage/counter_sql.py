"""SQL side of the write-behind counters: the bulk upserts of a flush, and totals reads."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

import peewee as pw

from appliance.storage.counter_store import COMMENT_TARGET
from appliance.storage.models import Comment, Counter, FlushBatch, Page, Site, UniqueVisitors

log = logging.getLogger("ovation.flush")
T = TypeVar("T")
CHUNK_ROWS = 1000  # rows per INSERT: well under SQLite's and PostgreSQL's parameter limits


def chunked(items: Iterable[T], size: int = CHUNK_ROWS) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    already_applied: bool
    counters: int
    interactions: int
    pages: int
    dropped: int  # deltas for sites that no longer exist


def apply_batch(
    database: pw.Database,
    batch_id: str,
    deltas: dict[tuple[str, str, str], int],
    visitor_estimates: dict[tuple[str, str], int],
) -> BatchResult:
    """Add `deltas` ((site, reaction, path) -> delta) to SQL in one transaction, once per id.

    The FlushBatch row commits with the counters, so replaying a batch whose commit succeeded
    (the flusher died before dropping it from Redis) changes nothing.
    """
    with database.connection_context(), database.atomic():
        if FlushBatch.select().where(FlushBatch.batch_id == batch_id).exists():
            return BatchResult(batch_id, True, 0, 0, 0, 0)
        votes = {key: delta for key, delta in deltas.items()
                 if key[2].startswith(COMMENT_TARGET)}
        vote_rows = apply_votes(votes)
        deltas = {key: delta for key, delta in deltas.items() if key not in votes}
        pages_wanted = {(site, path) for site, _, path in deltas} | set(visitor_estimates)
        page_ids = ensure_pages(pages_wanted)
        counter_rows = []
        dropped = 0
        for (site, reaction, path), delta in deltas.items():
            page_id = page_ids.get((site, path))
            if page_id is None:
                dropped += 1
                continue
            if delta:
                counter_rows.append({"page": page_id, "reaction": reaction, "total": delta})
        for rows in chunked(counter_rows):
            (Counter.insert_many(rows)
             .on_conflict(conflict_target=[Counter.page, Counter.reaction],
                          update={Counter.total: Counter.total + pw.EXCLUDED.total})
             .execute())
        estimate_rows = [{"page": page_ids[key], "estimate": estimate}
                         for key, estimate in visitor_estimates.items() if key in page_ids]
        for rows in chunked(estimate_rows):
            # Never lower the estimate: Redis losing its HyperLogLog must not shrink history.
            larger = pw.Case(None, [(UniqueVisitors.estimate > pw.EXCLUDED.estimate,
                                     UniqueVisitors.estimate)], pw.EXCLUDED.estimate)
            (UniqueVisitors.insert_many(rows)
             .on_conflict(conflict_target=[UniqueVisitors.page],
                          update={UniqueVisitors.estimate: larger})
             .execute())
        interactions = sum(abs(delta) for delta in deltas.values())
        interactions += sum(abs(delta) for delta in votes.values())
        FlushBatch.create(batch_id=batch_id, counters=len(counter_rows) + vote_rows,
                          interactions=interactions)
    if dropped:
        log.warning("batch %s: dropped %d counters of deleted sites", batch_id, dropped)
    return BatchResult(batch_id, False, len(counter_rows) + vote_rows, interactions,
                       len(page_ids), dropped)


def apply_votes(votes: dict[tuple[str, str, str], int]) -> int:
    """Add comment vote deltas ((site, up|down, ~c/ID) -> delta) with one UPDATE per chunk and
    direction. Must run inside the caller's transaction. Returns the comments touched."""
    touched = set()
    for reaction, column in (("up", Comment.votes_up), ("down", Comment.votes_down)):
        by_comment = {path[len(COMMENT_TARGET):]: delta
                      for (_site, kind, path), delta in votes.items()
                      if kind == reaction and delta}
        for chunk in chunked(sorted(by_comment.items())):
            change = pw.Case(Comment.id, [(comment_id, delta) for comment_id, delta in chunk], 0)
            (Comment.update({column: column + change})
             .where(Comment.id.in_([comment_id for comment_id, _ in chunk])).execute())
        touched |= set(by_comment)
    return len(touched)


def ensure_pages(pages: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Create missing pages (site name, path) in bulk; return the ids of those whose site exists.

    Must run inside the caller's transaction.
    """
    if not pages:
        return {}
    site_names = {site for site, _ in pages}
    site_ids = {row.name: row.id for row in
                Site.select(Site.id, Site.name).where(Site.name.in_(site_names))}
    new_rows = [{"site": site_ids[site], "path": path}
                for site, path in sorted(pages) if site in site_ids]
    for rows in chunked(new_rows):
        (Page.insert_many(rows)
         .on_conflict(conflict_target=[Page.site, Page.path], action="IGNORE")
         .execute())
    ids: dict[tuple[str, str], int] = {}
    names_by_id = {site_id: name for name, site_id in site_ids.items()}
    by_site: dict[int, list[str]] = {}
    for row in new_rows:
        by_site.setdefault(row["site"], []).append(row["path"])
    for site_id, paths in by_site.items():
        for chunk in chunked(paths):
            query = (Page.select(Page.id, Page.path)
                     .where((Page.site == site_id) & (Page.path.in_(chunk))))
            for page in query:
                ids[(names_by_id[site_id], page.path)] = page.id
    return ids


def read_page_totals(
    database: pw.Database, site: str, paths: list[str], inflight_batch_id: str,
) -> tuple[dict[str, dict[str, int]], bool]:
    """SQL totals of `paths` of `site`, and whether batch `inflight_batch_id` is already applied.

    Both come from one transaction so they describe the same moment.
    """
    with database.connection_context(), database.atomic():
        applied = bool(inflight_batch_id) and FlushBatch.select().where(
            FlushBatch.batch_id == inflight_batch_id).exists()
        totals: dict[str, dict[str, int]] = {path: {} for path in paths}
        pages = [path for path in paths if not path.startswith(COMMENT_TARGET)]
        comments = {path[len(COMMENT_TARGET):]: path for path in paths
                    if path.startswith(COMMENT_TARGET)}
        if pages:
            query = (Counter.select(Page.path, Counter.reaction, Counter.total)
                     .join(Page).join(Site)
                     .where((Site.name == site) & (Page.path.in_(pages)))
                     .tuples())
            for path, reaction, total in query:
                totals[path][reaction] = total
        if comments:
            query = (Comment.select(Comment.id, Comment.votes_up, Comment.votes_down)
                     .join(Page).join(Site)
                     .where((Site.name == site) & (Comment.id.in_(list(comments))))
                     .tuples())
            for comment_id, up, down in query:
                totals[comments[comment_id]] = {"up": up, "down": down}
    return totals, applied
