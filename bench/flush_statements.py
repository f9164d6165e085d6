"""SQL statements, rows and time of one flush, against writing each interaction to SQL.

On real SQLite (a file, Ovation's pragmas) and real PostgreSQL (a private cluster with durable
defaults and pg_stat_statements), with a private redis-server on a Unix socket:

1. record 10,000 interactions over 1,000 pages (50 % view / 25 % like / 25 % applause, random
   visitors) through Ovation's CounterService, then run ONE `flush_once`, counting every SQL
   statement twice: as peewee sends it (`execute_sql`) and as the database executes it
   (SQLite's trace callback / pg_stat_statements, which also see BEGIN and COMMIT);
2. again with 10,000 new interactions on the same pages (the steady state: pages exist);
3. the naive baseline: the same 10,000 interactions written straight to SQL, one upsert per
   interaction in its own transaction (what a per-request counter does);
4. 100,000 dirty counters (100,000 pages x 1 type) flushed at once into a fresh database
   (with --big-again, once more with the pages existing).

The driver runs on core 1, Redis and PostgreSQL on core 0 (SQLite runs inside the driver).
Prints Markdown to stdout.

    .venv/bin/python -m bench.flush_statements [--interactions 10000] [--pages 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import peewee as pw
import redis

from bench.common import (
    PostgresServer,
    RedisServer,
    fmt_float,
    fmt_int,
    log,
    pin_self,
    require_binary,
    table,
    usable_cores,
)

SITE = "bench"
REACTION_MIX = ("view", "view", "like", "applause")
_STATEMENT = re.compile(r'^\s*(\w+)(?:.*?\b(?:INTO|FROM|UPDATE)\s+"?(\w+)"?)?', re.S | re.I)


# -- counting ----------------------------------------------------------------------------------

@dataclass
class Measured:
    label: str
    transactions: int | str
    app_statements: int = 0  # what peewee sent through execute_sql
    db_statements: int = 0  # what the database executed (incl. BEGIN/COMMIT)
    rows: int = 0  # rows inserted or updated (cursor.rowcount of writes)
    seconds: float = 0.0
    sql_seconds: float | None = None  # inside apply_batch (the SQL transaction)
    execute_seconds: float = 0.0  # inside execute_sql (driver + database)
    by_kind: Tally = field(default_factory=Tally)
    db_kinds: Tally = field(default_factory=Tally)
    redis_commands: int | None = None
    redis_by_command: Tally = field(default_factory=Tally)
    redis_longest: tuple[float, str] | None = None  # (ms, command) of the slowest command
    report: object = None
    interactions: int = 0


def statement_kind(sql: str) -> str:
    match = _STATEMENT.match(sql)
    if not match:
        return sql.split(None, 1)[0].upper() if sql.strip() else "?"
    verb, table_name = match.group(1).upper(), match.group(2)
    return f"{verb} {table_name}" if table_name else verb


class StatementCounter:
    """Counts statements on one open peewee connection, app side and database side."""

    def __init__(self, database: pw.Database, postgres: PostgresServer | None,
                 db_name: str | None) -> None:
        self.database = database
        self.postgres = postgres
        self.db_name = db_name
        self.app = Tally()
        self.rows = 0
        self.execute_seconds = 0.0  # inside execute_sql: driver + database, not peewee's build
        self.traced: list[str] = []
        self._original = database.execute_sql

    def __enter__(self) -> StatementCounter:
        original = self._original

        def counting_execute_sql(sql, params=None, *args, **kwargs):
            started = time.perf_counter()
            cursor = original(sql, params, *args, **kwargs)
            self.execute_seconds += time.perf_counter() - started
            kind = statement_kind(sql)
            self.app[kind] += 1
            if (self.postgres is None and kind.split()[0] in ("INSERT", "UPDATE", "DELETE")
                    and cursor.rowcount > 0):
                self.rows += cursor.rowcount
            return cursor

        self.database.execute_sql = counting_execute_sql
        if self.postgres is None:
            self.database.connection().set_trace_callback(self.traced.append)
        else:
            with self.postgres.admin() as cursor:
                cursor.execute("SELECT pg_stat_statements_reset()")
            self._writes_before = self._table_writes()
        return self

    def __exit__(self, *exc) -> None:
        self.database.execute_sql = self._original
        if self.postgres is None:
            self.database.connection().set_trace_callback(None)
        else:
            # PostgreSQL: rows written are what the tables' statistics say (inserts + updates),
            # because one statement with data-modifying CTEs reports only its SELECT's rows.
            self._original("SELECT pg_stat_force_next_flush()")
            self.rows = self._settled_writes() - self._writes_before

    def _table_writes(self) -> int:
        import psycopg2

        connection = psycopg2.connect(dbname=self.db_name, user="postgres", host="127.0.0.1",
                                      port=self.postgres.port)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) "
                               "FROM pg_stat_user_tables")
                return int(cursor.fetchone()[0])
        finally:
            connection.close()

    def _settled_writes(self) -> int:
        """The statistics once the writer's pending figures reached shared memory."""
        last, deadline = -1, time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.1)
            current = self._table_writes()
            if current == last:
                return current
            last = current
        return last

    def database_side(self) -> Tally:
        if self.postgres is None:
            return Tally(statement_kind(sql) for sql in self.traced)
        tally: Tally = Tally()
        with self.postgres.admin() as cursor:
            cursor.execute(
                "SELECT query, calls FROM pg_stat_statements WHERE dbid = "
                "(SELECT oid FROM pg_database WHERE datname = %s)", (self.db_name,))
            for query, calls in cursor.fetchall():
                if "pg_stat" in query:  # the benchmark's own reading of the statistics
                    continue
                tally[statement_kind(query)] += calls
        return tally


class RedisWatch:
    """Commands Redis executed, and the slowest one (it blocks every other client)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def __enter__(self) -> RedisWatch:
        self.client.config_set("slowlog-log-slower-than", 500)  # microseconds
        self.client.config_set("slowlog-max-len", 10000)
        self.client.slowlog_reset()
        self.client.config_resetstat()
        return self

    def __exit__(self, *exc) -> None:
        stats = self.client.info("commandstats")
        ignore = ("cmdstat_info", "cmdstat_config", "cmdstat_slowlog")  # our own probes
        self.by_command = Tally({name.removeprefix("cmdstat_").upper(): value["calls"]
                                 for name, value in stats.items()
                                 if not name.startswith(ignore)})
        self.commands = sum(self.by_command.values())
        entries = self.client.slowlog_get(10000)
        entries = [e for e in entries
                   if not str(e.get("command", b"")).lower().startswith(("config", "info"))]
        if entries:
            slowest = max(entries, key=lambda e: e["duration"])
            command = slowest["command"]
            command = command.decode() if isinstance(command, bytes) else str(command)
            if command.lower().startswith("evalsha"):
                command = "EVALSHA (a flush script)"
            self.longest = (slowest["duration"] / 1000, command.split()[0].upper()
                            if not command.startswith("EVALSHA") else command)
        else:
            self.longest = None


# -- workload ----------------------------------------------------------------------------------

def make_interactions(rng: random.Random, count: int, pages: int,
                      reactions: tuple[str, ...] = REACTION_MIX) -> list[tuple[str, str, str]]:
    """(path, reaction, visitor id) triples."""
    width = len(str(pages))
    return [(f"/bench/post-{rng.randrange(pages):0{width}d}/", rng.choice(reactions),
             f"bench-{rng.getrandbits(48):012x}") for _ in range(count)]


def record(redis_url: str, database: pw.Database, registry, settings, interactions,
           concurrency: int = 64) -> int:
    """Record each interaction through Ovation's CounterService (what a web worker runs).

    Returns the sum of the deltas it applied. A page's first interaction also makes the
    service read that page's SQL totals into Redis, as in production.
    """
    import asyncio

    import redis.asyncio as aioredis

    from appliance.services.counters import CounterService
    from appliance.services.sql_runner import SqlRunner
    from appliance.storage.site_store import SiteRecord

    async def main() -> int:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True,
                                         max_connections=concurrency * 2)
        runner = SqlRunner()
        service = CounterService(client, database, registry, settings, runner.run)
        site = SiteRecord(name=SITE)
        queue = iter(interactions)
        applied = 0

        async def worker() -> None:
            nonlocal applied
            for path, reaction, visitor in queue:
                outcome = await service.record(site, path, reaction, "add", 1, visitor)
                applied += outcome.applied

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            await client.aclose()
            runner.close()
        return applied

    return asyncio.run(main())


def write_dirty_counters(client: redis.Redis, count: int, rng: random.Random) -> int:
    """Leave `count` pages with one pending view each, as the interaction script would.

    Written straight in the script's key layout (counter_store's key helpers): going through
    CounterService would also read 100,000 pages' SQL totals first and take minutes. The flush's
    own report and the SQL totals afterwards are checked, so a layout change fails loudly.
    """
    from appliance.storage import counter_store as keys

    width = len(str(count))
    for start in range(0, count, 5000):
        pipe = client.pipeline(transaction=False)
        pending = {}
        for index in range(start, min(start + 5000, count)):
            path = f"/bench/page-{index:0{width}d}/"
            member = keys.page_member(SITE, path)
            pending[keys.counter_field(SITE, "view", path)] = 1
            pipe.pfadd(keys.hll_key(member), f"{rng.getrandbits(64):016x}")
            pipe.sadd(keys.HLL_DIRTY, member)
        pipe.hset(keys.PENDING, mapping=pending)
        pipe.execute()
    return count


def sql_sum(database: pw.Database) -> int:
    from appliance.storage.models import Counter, Page, Site

    with database.connection_context():
        value = (Counter.select(pw.fn.SUM(Counter.total)).join(Page).join(Site)
                 .where(Site.name == SITE).scalar())
    return int(value or 0)


# -- the measurements --------------------------------------------------------------------------

class Target:
    """One SQL database under test (a fresh one per scenario)."""

    def __init__(self, kind: str, work: Path, postgres: PostgresServer | None) -> None:
        self.kind = kind
        self.work = work
        self.postgres = postgres

    @property
    def title(self) -> str:
        return "SQLite" if self.kind == "sqlite" else "PostgreSQL"

    def fresh(self, name: str) -> tuple[pw.Database, str | None]:
        from appliance.services.sites import add_site
        from appliance.storage.database import open_database
        from appliance.storage.migrations import migrate

        if self.kind == "sqlite":
            url, db_name = f"sqlite:///{self.work / (name + '.db')}", None
        else:
            db_name = f"ovation_bench_{name}"
            url = self.postgres.create_database(db_name)
        database = open_database(url)  # also binds Ovation's models to it
        migrate(database)
        add_site(database, SITE, [], "benchmark")
        return database, db_name


def measure_flush(label: str, database: pw.Database, db_name: str | None,
                  postgres: PostgresServer | None, client: redis.Redis) -> Measured:
    from appliance.jobs import flush as flush_module

    sql_time = {"s": 0.0}
    real_apply = flush_module.apply_batch

    def timed_apply(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_apply(*args, **kwargs)
        finally:
            sql_time["s"] += time.perf_counter() - started

    flush_module.apply_batch = timed_apply
    try:
        with database.connection_context():
            with (StatementCounter(database, postgres, db_name) as counter,
                  RedisWatch(client) as watch):
                started = time.perf_counter()
                report = flush_module.flush_once(client, database)
                seconds = time.perf_counter() - started
            db_kinds = counter.database_side()
    finally:
        flush_module.apply_batch = real_apply
    return Measured(label, 1, app_statements=sum(counter.app.values()),
                    db_statements=sum(db_kinds.values()), rows=counter.rows, seconds=seconds,
                    sql_seconds=sql_time["s"], execute_seconds=counter.execute_seconds,
                    by_kind=counter.app, db_kinds=db_kinds, redis_commands=watch.commands,
                    redis_by_command=watch.by_command, redis_longest=watch.longest,
                    report=report, interactions=report.interactions)


def measure_naive(label: str, database: pw.Database, db_name: str | None,
                  postgres: PostgresServer | None, interactions) -> Measured:
    """One upsert per interaction, each its own transaction; pages exist beforehand."""
    from appliance.storage.models import Counter, Page, Site

    with database.connection_context():
        site_id = Site.get(Site.name == SITE).id
        paths = sorted({path for path, _, _ in interactions})
        with database.atomic():
            for start in range(0, len(paths), 1000):
                Page.insert_many([{"site": site_id, "path": p}
                                  for p in paths[start:start + 1000]]).execute()
        page_ids = {page.path: page.id for page in
                    Page.select(Page.id, Page.path).where(Page.site == site_id)}
        with StatementCounter(database, postgres, db_name) as counter:
            started = time.perf_counter()
            for path, reaction, _visitor in interactions:
                (Counter.insert(page=page_ids[path], reaction=reaction, total=1)
                 .on_conflict(conflict_target=[Counter.page, Counter.reaction],
                              update={Counter.total: Counter.total + pw.EXCLUDED.total})
                 .execute())
            seconds = time.perf_counter() - started
        db_kinds = counter.database_side()
    return Measured(label, len(interactions), app_statements=sum(counter.app.values()),
                    db_statements=sum(db_kinds.values()), rows=counter.rows, seconds=seconds,
                    execute_seconds=counter.execute_seconds, by_kind=counter.app,
                    db_kinds=db_kinds, interactions=len(interactions))


def run_database(target: Target, client: redis.Redis, redis_url: str, registry, settings,
                 count: int, pages: int, big: int, big_again: bool, seed: int
                 ) -> tuple[list[Measured], list[Measured]]:
    rng = random.Random(seed)
    small: list[Measured] = []
    big_runs: list[Measured] = []

    database, name = target.fresh("flush")
    client.flushall()
    first = make_interactions(rng, count, pages)
    applied = record(redis_url, database, registry, settings, first)
    log(f"{target.title}: recorded {count:,} interactions ({applied:,} applied); flushing")
    m = measure_flush("flush, first (creates the pages)", database, name, target.postgres,
                      client)
    check(sql_sum(database) == applied, f"{target.title}: SQL sum != applied after flush 1")
    small.append(m)
    second = make_interactions(rng, count, pages)
    applied += record(redis_url, database, registry, settings, second)
    m = measure_flush("flush, again (pages exist)", database, name, target.postgres, client)
    check(sql_sum(database) == applied, f"{target.title}: SQL sum != applied after flush 2")
    small.append(m)
    database.close()

    log(f"{target.title}: naive baseline, {count:,} single-row upserts")
    database, name = target.fresh("naive")
    m = measure_naive("naive: 1 upsert per interaction, autocommit", database, name,
                      target.postgres, first)
    check(sql_sum(database) == count, f"{target.title}: naive SQL sum != {count}")
    small.append(m)
    database.close()

    if big:
        database, name = target.fresh("big")
        expected = 0
        labels = ["first (creates the pages)"] + (["again (pages exist)"] if big_again else [])
        for round_label in labels:
            client.flushall()
            expected += write_dirty_counters(client, big, rng)
            log(f"{target.title}: flushing {big:,} dirty counters, {round_label}")
            m = measure_flush(f"{big:,} counters, {round_label}", database, name,
                              target.postgres, client)
            check(m.report.counters == big and sql_sum(database) == expected,
                  f"{target.title}: the flush moved {m.report.counters} counters, not {big}")
            big_runs.append(m)
        database.close()
    return small, big_runs


def durability_wait_of(client: redis.Redis) -> float | None:
    """What the flusher process would sleep per batch with this Redis, if Ovation says."""
    from appliance.jobs import flush as flush_module

    function = getattr(flush_module, "durability_wait", None)
    return function(client) if function else None


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"CHECK FAILED: {message}")


# -- report ------------------------------------------------------------------------------------

def render(results: dict[str, tuple[list[Measured], list[Measured]]], count: int, pages: int,
           big: int, client_core: int, server_core: int, durability_wait_s: float | None) -> str:
    wait = ""
    if durability_wait_s:
        wait = (f" with its default of no durability wait (the flusher process also sleeps "
                f"{durability_wait_s:g} s after step 1, until Redis' append-only file is "
                f"fsynced; idle time, not included here)")
    out = [f"## One flush vs. per-interaction writes ({count:,} interactions, {pages:,} pages)",
           ""]
    out.append(
        f"{count:,} interactions (random page of {pages:,}, random visitor, 50 % view / 25 % "
        f"like / 25 % applause) recorded through Ovation's CounterService (its Lua script; a "
        f"page's first interaction also cached its SQL totals), then ONE `flush_once`{wait}. "
        f"*Sent* counts statements peewee sent (`execute_sql`); *executed* "
        f"counts what the database ran, BEGIN/COMMIT included (SQLite's trace callback; "
        f"pg_stat_statements). Rows = rows inserted or updated. The naive baseline writes the "
        f"same {count:,} interactions with one `INSERT ... ON CONFLICT DO UPDATE SET total = "
        f"total + 1` each, in autocommit, to a database whose pages already exist (it is "
        f"spared the page look-ups and the per-visitor rules a real one would also need). "
        f"Driver and SQLite on core {client_core}; Redis and PostgreSQL (durable defaults: "
        f"fsync and synchronous_commit on) on core {server_core}.")
    out.append("")
    rows = []
    for title, (small, _big) in results.items():
        for m in small:
            rows.append([title, m.label, fmt_int(m.transactions), fmt_int(m.app_statements),
                         fmt_int(m.db_statements), fmt_int(m.rows), fmt_float(m.seconds * 1000),
                         fmt_float(m.sql_seconds * 1000) if m.sql_seconds is not None else "-",
                         fmt_float(m.execute_seconds * 1000),
                         fmt_int(m.interactions / m.seconds) if m.seconds else "-"])
    out.append(table(["database", "write path", "transactions", "statements sent",
                      "statements executed", "rows written", "time ms", "SQL transaction ms",
                      "in execute_sql ms", "interactions/s"], rows, "llrrrrrrrr"))
    out.append("")
    out.append("*Time* is the whole `flush_once` (Redis reads, SQL, Redis finish) or the whole "
               "naive loop; *SQL transaction* is `apply_batch`; *in execute_sql* is the time "
               "spent inside peewee's `execute_sql` (driver and database, without building the "
               "SQL text and without BEGIN/COMMIT).")
    out.append("")
    ratio_rows = []
    for title, (small, _big) in results.items():
        naive = small[-1]
        for m in small[:-1]:
            statements = (f"{naive.db_statements / m.db_statements:,.0f}x"
                          if m.db_statements else "-")
            ratio_rows.append([title, m.label, statements,
                               f"{naive.rows / m.rows:.1f}x" if m.rows else "-",
                               f"{naive.seconds / m.seconds:.1f}x"])
    out.append(table(["database", "flush", "naive/flush statements executed",
                      "naive/flush rows", "naive/flush time"], ratio_rows, "llrrr"))
    out.append("")
    out.append("Statements of the first flush, by kind (as the database executed them):")
    out.append("")
    kinds = sorted({k for _, (small, _b) in results.items() for k in small[0].db_kinds})
    kind_rows = [[kind] + [str(small[0].db_kinds.get(kind, 0))
                           for _, (small, _b) in results.items()] for kind in kinds]
    kind_rows.append(["**total**"] + [f"**{small[0].db_statements}**"
                                      for _, (small, _b) in results.items()])
    out.append(table(["statement", *results.keys()], kind_rows, "l" + "r" * len(results)))
    out.append("")
    flush0 = next(iter(results.values()))[0][0]
    rep = flush0.report
    commands = ", ".join(f"{name} {calls:,}" for name, calls
                         in flush0.redis_by_command.most_common())
    out.append(f"That flush moved {rep.counters:,} counters ({rep.interactions:,} interactions, "
               f"{rep.pages:,} pages, plus {rep.pages:,} unique-visitor estimates). On the "
               f"Redis side it ran {flush0.redis_commands:,} commands, counting those its Lua "
               f"scripts run inside Redis: {commands}.")
    out.append("")
    out.append(outside_execute(results, big=False))
    if big:
        out.append("")
        out.append(f"## Flushing {big:,} dirty counters ({big:,} pages x 1 type)")
        out.append("")
        again = (" Then the same again on the same database, so that flush finds its pages."
                 if any(len(b) > 1 for _s, b in results.values()) else "")
        out.append(f"{big:,} views, one per page, written straight into Redis' pending "
                   f"counters and HyperLogLogs (the interaction script's key layout; the "
                   f"service would first read {big:,} pages' totals), then one "
                   f"`flush_once` into a fresh database (it creates the {big:,} pages).{again} "
                   f"*Longest Redis command* is the slowest single command Redis ran "
                   f"during the flush (SLOWLOG, 0.5 ms threshold): every other Redis client, "
                   f"i.e. every web request, waits that long.")
        out.append("")
        big_rows = []
        for title, (_small, big_runs) in results.items():
            for m in big_runs:
                longest = (f"{m.redis_longest[0]:,.1f} ({m.redis_longest[1]})"
                           if m.redis_longest else "< 0.5")
                big_rows.append([title, m.label, fmt_int(m.db_statements), fmt_int(m.rows),
                                 fmt_float(m.seconds, 2), fmt_float(m.sql_seconds, 2),
                                 fmt_float(m.execute_seconds, 2),
                                 fmt_int(m.report.counters / m.seconds), longest])
        out.append(table(["database", "flush", "statements executed", "rows written",
                          "time s", "SQL transaction s", "in execute_sql s", "counters/s",
                          "longest Redis command ms"], big_rows, "llrrrrrrr"))
        out.append("")
        out.append(outside_execute(results, big=True))
    return "\n".join(out)


def outside_execute(results: dict[str, tuple[list[Measured], list[Measured]]], big: bool
                    ) -> str:
    """How much of each flush's SQL transaction is spent outside execute_sql."""
    parts = []
    for title, (small, big_runs) in results.items():
        runs = big_runs if big else small[:1]
        for m in runs:
            if m.sql_seconds:
                outside = m.sql_seconds - m.execute_seconds
                parts.append(f"{title} {outside * 1000:,.0f} ms of {m.sql_seconds * 1000:,.0f} ms "
                             f"({outside / m.sql_seconds:.0%})")
    which = "large flush" if big else "first flush"
    return (f"Time of the {which}'s SQL transaction spent outside `execute_sql`, i.e. in Python "
            f"composing the statements (peewee's `insert_many`), reading back ids, and "
            f"BEGIN/COMMIT: {'; '.join(parts)}.")


def run(count: int, pages: int, big: int, big_again: bool, keep: bool,
        databases: tuple[str, ...] = ("sqlite", "postgresql")) -> str:
    from appliance.plugin_registry import ReactionRegistry
    from appliance.settings import Settings
    from plugins import builtin

    require_binary("redis-server", "run ./install.sh (or apt-get install redis-server)")
    server_core, client_core = usable_cores()
    pin_self(client_core)
    work = Path(tempfile.mkdtemp(prefix="ovation-bench-flush-"))
    settings = Settings(data_dir=work / "data", secret_key="bench")
    registry = ReactionRegistry.from_factories(
        {"view": builtin.view, "like": builtin.like, "applause": builtin.applause}, settings)
    redis_server = RedisServer(work / "redis", server_core)
    postgres = (PostgresServer(Path("/tmp") / f"ovation-bench-pg-{os.getpid()}", server_core)
                if "postgresql" in databases else None)
    stops: list[Callable[[], None]] = []
    results: dict[str, tuple[list[Measured], list[Measured]]] = {}
    wait_s = None
    try:
        redis_server.start()
        stops.append(redis_server.stop)
        if postgres is not None:
            log("starting a private PostgreSQL")
            postgres.start()
            stops.append(postgres.stop)
            with postgres.admin() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        client = redis.Redis(unix_socket_path=str(redis_server.socket), decode_responses=True)
        wait_s = durability_wait_of(client)
        for kind in databases:
            target = Target(kind, work, postgres if kind == "postgresql" else None)
            # The same seed: both databases get the very same interactions.
            results[target.title] = run_database(target, client, f"unix://{redis_server.socket}",
                                                 registry, settings, count, pages, big,
                                                 big_again, seed=1000)
        client.close()
    finally:
        for stop in reversed(stops):
            try:
                stop()
            except Exception as exc:  # cleanup must not hide the real error
                log(f"cleanup: {exc}")
        if keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return render(results, count, pages, big, client_core, server_core, wait_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=100_000,
                        help="dirty counters in the large flush (0 skips it) [100000]")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), action="append",
                        help="only this database (repeatable) [both]")
    parser.add_argument("--big-again", action="store_true",
                        help="also flush the large batch a second time, its pages existing")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    databases = tuple(args.database or ("sqlite", "postgresql"))
    print(run(args.interactions, args.pages, args.big, args.big_again, args.keep, databases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
