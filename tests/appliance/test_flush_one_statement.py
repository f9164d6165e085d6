"""PostgreSQL flushes a whole batch in one statement; when a page appears concurrently (which
that statement's snapshot cannot see), it rolls back and applies the batch step by step, so
nothing is lost. Real PostgreSQL, two real connections."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from appliance.services.sites import add_site
from appliance.storage.counter_sql import apply_batch
from appliance.storage.database import open_database
from appliance.storage.migrations import migrate
from appliance.storage.models import Counter, FlushBatch, Page, Site, UniqueVisitors


@pytest.fixture
def postgres_url(postgres_server) -> str:
    return postgres_server.create_database()


@pytest.fixture
def postgres(postgres_url):
    database = open_database(postgres_url)
    migrate(database)
    add_site(database, "blog", [])
    yield database
    database.close()


def totals(database) -> dict[tuple[str, str], int]:
    with database.connection_context():
        query = (Counter.select(Page.path, Counter.reaction, Counter.total).join(Page).tuples())
        return {(path, reaction): total for path, reaction, total in query}


def statements_of(database, action) -> list[str]:
    sent: list[str] = []
    original = database.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        sent.append(sql)
        return original(sql, params, *args, **kwargs)

    database.execute_sql = counting
    try:
        action()
    finally:
        database.execute_sql = original
    return sent


def test_a_batch_is_one_statement_and_a_replay_changes_nothing(postgres):
    deltas = {("blog", "like", f"/p{n}"): n + 1 for n in range(500)}
    deltas[("blog", "emoji.heart", "/p1")] = 3
    deltas[("gone", "like", "/p1")] = 9  # a deleted site: dropped, counted
    estimates = {("blog", "/p1"): 7}
    sent = statements_of(postgres, lambda: apply_batch(postgres, "b1", deltas, estimates))
    assert len(sent) == 1
    result = apply_batch(postgres, "b1", deltas, estimates)  # the crashed flusher's replay
    assert result.already_applied
    assert totals(postgres)[("/p1", "like")] == 2 and totals(postgres)[("/p1", "emoji.heart")] == 3
    assert sum(total for (_, reaction), total in totals(postgres).items()
               if reaction == "like") == sum(range(1, 501))
    with postgres.connection_context():
        assert UniqueVisitors.get().estimate == 7
        assert FlushBatch.select().count() == 1
    second = apply_batch(postgres, "b2", {("blog", "like", "/p1"): -1}, {("blog", "/p1"): 5})
    assert (second.counters, second.already_applied) == (1, False)
    assert totals(postgres)[("/p1", "like")] == 1
    with postgres.connection_context():
        assert UniqueVisitors.get().estimate == 7  # never lowered


def test_a_page_created_concurrently_is_not_lost(postgres, postgres_url, caplog):
    """Another transaction inserts the page while the flush statement runs: the statement
    waits on it, skips it on conflict, cannot see it, notices, and the slow path counts it."""
    caplog.set_level(logging.INFO, logger="ovation.flush")
    other = open_database(postgres_url)
    other.connect()
    other.execute_sql("BEGIN")
    with postgres.connection_context():
        site_id = Site.get(Site.name == "blog").id
    other.execute_sql('INSERT INTO "page" ("site_id", "path", "title", "created_at") '
                      "VALUES (%s, '/race', '', now())", (site_id,))
    results = []
    flush = threading.Thread(target=lambda: results.append(
        apply_batch(postgres, "race", {("blog", "like", "/race"): 4}, {})))
    flush.start()
    time.sleep(1.0)  # the flush statement now waits on the uncommitted page
    other.execute_sql("COMMIT")
    flush.join(30)
    other.close()
    assert results and not results[0].already_applied
    assert "a page appeared meanwhile" in caplog.text  # the one-statement path stood down
    assert totals(postgres) == {("/race", "like"): 4}
    with postgres.connection_context():
        assert Page.select().where(Page.path == "/race").count() == 1
