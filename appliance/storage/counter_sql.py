"""SQL side of the write-behind counters: the bulk upserts of a flush, and totals reads."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

import peewee as pw

from appliance.storage.counter_store import COMMENT_TARGET
from appliance.storage.database import read_transaction, write_transaction
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
    if isinstance(database, pw.PostgresqlDatabase):
        result = _apply_batch_in_one_statement(database, batch_id, deltas, visitor_estimates)
        if result is not None:
            return result
    with database.connection_context(), write_transaction(database):
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


# PostgreSQL: the whole batch in one statement. The deltas and estimates travel as two JSON
# parameters (no parameter limit, one round trip); data-modifying CTEs record the batch, create
# missing pages, upsert the counters, add comment votes and raise unique-visitor estimates.
# Everything after `batch` is gated on the batch row being new, so a replay changes nothing.
# The CTEs share one snapshot: a page another transaction commits while this one runs is
# neither inserted (the conflict) nor seen (the snapshot), so the statement reports how many
# counters it expected and wrote; on a difference the caller rolls back and uses the
# multi-statement path, which reads pages after inserting them.
_ONE_STATEMENT_FLUSH = """
WITH batch AS (
  INSERT INTO "flush_batch" ("batch_id", "applied_at", "counters", "interactions")
  VALUES (%s, now() AT TIME ZONE 'utc', %s, %s)
  ON CONFLICT ("batch_id") DO NOTHING RETURNING "id"),
input AS (
  SELECT i.site, i.path, i.reaction, i.delta
  FROM json_to_recordset(%s::json) AS i(site text, path text, reaction text, delta bigint)),
estimates AS (
  SELECT e.site, e.path, e.estimate
  FROM json_to_recordset(%s::json) AS e(site text, path text, estimate bigint)),
wanted AS (
  SELECT DISTINCT s."id" AS site_id, w.path
  FROM (SELECT site, path FROM input WHERE left(path, 3) <> '~c/'
        UNION SELECT site, path FROM estimates) AS w
  JOIN "site" s ON s."name" = w.site
  WHERE EXISTS (SELECT 1 FROM batch)),
new_pages AS (
  INSERT INTO "page" ("site_id", "path", "title", "created_at")
  SELECT site_id, path, '', now() AT TIME ZONE 'utc' FROM wanted
  ON CONFLICT ("site_id", "path") DO NOTHING RETURNING "id", "site_id", "path"),
pages AS (
  SELECT "id", "site_id", "path" FROM new_pages
  UNION ALL
  SELECT p."id", p."site_id", p."path" FROM "page" p
  JOIN wanted w ON w.site_id = p."site_id" AND w.path = p."path"),
counters AS (
  INSERT INTO "counter" ("page_id", "reaction", "total")
  SELECT pg."id", i.reaction, i.delta FROM input i
  JOIN "site" s ON s."name" = i.site
  JOIN pages pg ON pg."site_id" = s."id" AND pg."path" = i.path
  WHERE i.delta <> 0
  ON CONFLICT ("page_id", "reaction") DO UPDATE SET "total" = "counter"."total" + EXCLUDED."total"
  RETURNING 1),
votes AS (
  UPDATE "comment" c SET "votes_up" = c."votes_up" + v.up, "votes_down" = c."votes_down" + v.down
  FROM (SELECT substr(path, 4) AS id,
               sum(CASE WHEN reaction = 'up' THEN delta ELSE 0 END) AS up,
               sum(CASE WHEN reaction = 'down' THEN delta ELSE 0 END) AS down
        FROM input WHERE left(path, 3) = '~c/' AND delta <> 0 GROUP BY 1) AS v
  WHERE c."id" = v.id AND EXISTS (SELECT 1 FROM batch)
  RETURNING 1),
visitors AS (
  INSERT INTO "unique_visitors" ("page_id", "estimate")
  SELECT pg."id", e.estimate FROM estimates e
  JOIN "site" s ON s."name" = e.site
  JOIN pages pg ON pg."site_id" = s."id" AND pg."path" = e.path
  ON CONFLICT ("page_id") DO UPDATE
    SET "estimate" = GREATEST("unique_visitors"."estimate", EXCLUDED."estimate")
  RETURNING 1)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM counters),
       (SELECT count(*) FROM votes), (SELECT count(*) FROM pages),
       (SELECT count(*) FROM input i JOIN "site" s ON s."name" = i.site
        WHERE i.delta <> 0 AND left(i.path, 3) <> '~c/'),
       (SELECT count(*) FROM input i LEFT JOIN "site" s ON s."name" = i.site
        WHERE s."id" IS NULL AND left(i.path, 3) <> '~c/')
"""


class _PageRace(Exception):
    """A page appeared concurrently during the one-statement flush: roll it back, go slow."""


def _apply_batch_in_one_statement(
    database: pw.PostgresqlDatabase, batch_id: str, deltas: dict[tuple[str, str, str], int],
    visitor_estimates: dict[tuple[str, str], int],
) -> BatchResult | None:
    """The batch in one statement, or None when a concurrent page insert got in the way."""
    rows = [{"site": site, "path": path, "reaction": reaction, "delta": delta}
            for (site, reaction, path), delta in deltas.items()]
    estimates = [{"site": site, "path": path, "estimate": estimate}
                 for (site, path), estimate in visitor_estimates.items()]
    nonzero = sum(1 for delta in deltas.values() if delta)
    interactions = sum(abs(delta) for delta in deltas.values())
    try:
        with database.connection_context(), write_transaction(database):
            cursor = database.execute_sql(_ONE_STATEMENT_FLUSH, (
                batch_id, nonzero, interactions, json.dumps(rows), json.dumps(estimates)))
            new, counters, votes, pages, expected, dropped = cursor.fetchone()
            if not new:
                return BatchResult(batch_id, True, 0, 0, 0, 0)
            if counters != expected:
                raise _PageRace()
    except _PageRace:
        log.info("batch %s: a page appeared meanwhile; applying it statement by statement",
                 batch_id)
        return None
    if dropped:
        log.warning("batch %s: dropped %d counters of deleted sites", batch_id, dropped)
    return BatchResult(batch_id, False, counters + votes, interactions, pages, dropped)


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
    with database.connection_context(), read_transaction(database):
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
