"""CI portion of the fault-injection suite: every fault kind once, under load, on both databases.

Each run starts the appliance as real processes (tests/reliability/rig.py), drives a mixed load
over HTTP and WebSocket (interactions, comments and replies, their edits, deletions and votes)
with live subscribers, SIGKILLs and restarts each web, the flusher, the listener and the
notifier, restarts Redis (AOF replay) and, on PostgreSQL, stops the database for a few seconds.
Nothing acknowledged may be lost or counted twice, and every acknowledged comment must reach the
SMTP server and the webhook receiver at least once, repeats under the same idempotency key. The
long soak is `python -m tests.reliability.soak` (docs/reliability.md).
"""

from __future__ import annotations

import pytest

from tests.reliability.scenario import TABLE_HEAD, run_scenario


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_nothing_acknowledged_is_lost_or_doubled_through_crashes(backend, tmp_path):
    report = run_scenario(tmp_path, backend, duration_s=10, seed=11)
    print(f"\n{TABLE_HEAD}\n{report.row()}\nanswers: {report.answers}")
    assert report.errors == []
    assert (report.lost, report.duplicated, report.late) == (0, 0, 0)
    assert set(report.faults) >= {"web0", "web1", "flusher", "listener", "notifier", "redis"}
    assert report.acknowledged > 1000  # the load really ran through the faults
    assert min(report.by_kind.values()) > 0, report.by_kind  # every kind of operation did
    assert report.subscribers_caught_up.startswith("4/4")
