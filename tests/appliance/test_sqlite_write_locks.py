"""SQLite write transactions wait for the write lock instead of failing with "database is
locked" (docs/reliability.md). Real processes, each with its own connection to one real
SQLite file in WAL mode, run the listener's comment inserts and the flusher's batches at
the same time.

A transaction opened with a plain (deferred) `BEGIN` reads first and writes afterwards. In
WAL mode SQLite cannot turn that read snapshot into a write once another connection has
committed after it was taken, and answers SQLITE_BUSY at once, without `busy_timeout`.
`write_transaction` starts with `BEGIN IMMEDIATE`: the write lock first (waiting for it),
then the reads, on the newest snapshot."""

from __future__ import annotations

import ast
import datetime as dt
import multiprocessing
import queue
from pathlib import Path

from appliance.services.sites import add_site
from appliance.storage import comment_store
from appliance.storage.counter_sql import apply_batch
from appliance.storage.database import open_database
from appliance.storage.migrations import migrate
from appliance.storage.models import Comment, Counter, FlushBatch
from appliance.workers.comment_handlers import store_comments

ROUNDS = 50  # per process; without BEGIN IMMEDIATE most of them failed
PATHS = 12  # few pages, so that the writers touch the same rows and pages
REPO = Path(__file__).resolve().parents[2]


def _comment(worker: int, number: int, parent_id: str | None = None) -> dict:
    return {
        "id": f"w{worker}c{number}",
        "site": "blog",
        "path": f"/p{number % PATHS}",
        "parent_id": parent_id,
        "author_name": "Ann",
        "body_markdown": "hi",
        "body_html": "<p>hi</p>",
        "status": "approved",
        "created_at": dt.datetime(2024, 1, 1).isoformat(),
    }


def _listener_writes(url: str, worker: int, start, results) -> None:
    """The listener's SQL: a comment on its own, then two together (a reply among them)."""
    database = open_database(url)  # this process's own connection, the models bound to it
    errors: list[str] = []
    start.wait()
    for number in range(0, 3 * ROUNDS, 3):
        try:
            comment_store.insert_comment(database, _comment(worker, number), max_depth=4)
            comment_store.insert_comments(
                database,
                [
                    _comment(worker, number + 1),
                    _comment(worker, number + 2, parent_id=f"w{worker}c{number}"),
                ],
                max_depth=4,
            )
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    database.close()
    results.put((worker, errors))


def _flusher_writes(url: str, worker: int, start, results) -> None:
    """The flusher's SQL: one batch of counter deltas and visitor estimates per round."""
    database = open_database(url)
    errors: list[str] = []
    start.wait()
    for number in range(ROUNDS):
        deltas = {("blog", "like", f"/p{(number + k) % PATHS}"): 1 for k in range(3)}
        estimates = {("blog", f"/p{number % PATHS}"): number}
        try:
            apply_batch(database, f"w{worker}b{number}", deltas, estimates)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    database.close()
    results.put((worker, errors))


def test_comment_inserts_and_flushes_in_several_processes_wait_for_each_other(sqlite_url):
    """Two listeners and two flushers at once: no round fails, nothing is lost."""
    database = open_database(sqlite_url)
    migrate(database)
    add_site(database, "blog", ["https://blog.example"])
    database.close()  # no connection of this process is open while the workers write

    # spawn, not fork: each worker opens its own connection in a fresh interpreter.
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    roles = [_listener_writes, _flusher_writes, _listener_writes, _flusher_writes]
    workers = [
        context.Process(target=role, args=(sqlite_url, number, start, results))
        for number, role in enumerate(roles)
    ]
    for worker in workers:
        worker.start()
    start.set()
    try:
        errors = dict(results.get(timeout=120) for _ in workers)
    except queue.Empty:
        codes = [worker.exitcode for worker in workers]
        raise AssertionError(f"a worker did not report; exit codes {codes}") from None
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    failures = [message for messages in errors.values() for message in messages]
    assert failures == [], (
        f"{len(failures)} of {len(workers) * ROUNDS} rounds failed, e.g. {failures[:3]}"
    )

    database = open_database(sqlite_url)
    with database.connection_context():
        listeners = [n for n, role in enumerate(roles) if role is _listener_writes]
        flushers = len(roles) - len(listeners)
        assert Comment.select().count() == len(listeners) * 3 * ROUNDS
        assert FlushBatch.select().count() == flushers * ROUNDS
        likes = sum(row.total for row in Counter.select().where(Counter.reaction == "like"))
        assert likes == flushers * ROUNDS * 3
    database.close()


def test_a_batch_that_fails_together_is_stored_one_by_one_on_savepoints(database, redis_client):
    """The listener's fallback: one write transaction, a savepoint per comment inside it (on
    SQLite the outer one began IMMEDIATE; the nested ones are savepoints all the same)."""
    add_site(database, "blog", ["https://blog.example"])
    bodies = [_comment(0, 1), {**_comment(0, 2), "site": "nowhere"}, _comment(0, 3)]
    assert store_comments(redis_client, database, 4, bodies) == [True, False, True]
    with database.connection_context():
        assert sorted(row.id for row in Comment.select()) == ["w0c1", "w0c3"]


def test_a_second_database_for_the_same_file_does_not_block_the_writes(sqlite_url):
    """Models bind to the last `Database` opened (here `second`, as an in-process web app
    does next to a test's own). A write transaction on `first` must not hold the write lock
    on `first`'s connection while its queries wait on `second`'s: that failed with "database
    is locked" after `busy_timeout`."""
    first = open_database(sqlite_url)
    migrate(first)
    add_site(first, "blog", ["https://blog.example"])
    second = open_database(sqlite_url)
    try:
        assert comment_store.insert_comment(first, _comment(0, 1), max_depth=4)
        assert comment_store.get_comment(second, "w0c1") is not None
    finally:
        first.close()
        second.close()


def test_every_sql_transaction_says_whether_it_writes():
    """A plain `atomic()` that writes brings "database is locked" back on SQLite: outside
    appliance/storage/database.py transactions are `write_transaction` or
    `read_transaction`."""
    allowed = REPO / "appliance" / "storage" / "database.py"
    found = []
    for package in ("appliance", "web", "cli", "plugins"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path == allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "atomic"
                ):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == [], f"use write_transaction or read_transaction instead: {found}"
