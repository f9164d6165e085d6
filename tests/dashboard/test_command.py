"""`platformctl dashboard --json / --once` as a user runs them, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from tests.conftest import REPO, ovation_env
from tests.dashboard.conftest import HOSTILE_NAME, HOSTILE_TEXT, add_comment


def platformctl(settings, *args: str, columns: int = 120) -> subprocess.CompletedProcess:
    env = {**ovation_env(settings), "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def sqlite_settings(make_settings, sqlite_url):
    return make_settings(sqlite_url, public_url="http://127.0.0.1:9")


@pytest.fixture
def prepared(sqlite_settings, redis_client):
    from appliance.storage.database import open_database
    from appliance.storage.migrations import migrate

    database = open_database(sqlite_settings.effective_database_url)
    migrate(database)
    add_site(database, "blog", ["https://blog.example"])
    add_comment(database, "d" * 32, body=HOSTILE_TEXT, author=HOSTILE_NAME, status="pending")
    database.close()
    redis_client.hset(keys.FLUSH_STATS, mapping={"last_at": 1, "batches_total": 3})
    return sqlite_settings


def test_json_prints_one_snapshot_for_scripts(prepared):
    result = platformctl(prepared, "dashboard", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["awaiting_moderation"] == 1
    assert body["latest_comments"][0]["author"] == HOSTILE_NAME
    assert body["flush"]["batches_total"] == 3
    assert "\x1b" not in result.stdout
    assert {"services", "rates", "today", "top_pages_now", "streams", "storage"} <= set(body)


def test_once_prints_every_panel_inert_and_exits(prepared):
    result = platformctl(prepared, "dashboard", "--once", columns=160)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x9b" not in result.stdout
    for title in ("Services", "Interactions", "Latest comments", "Flush", "Queues", "Storage"):
        assert title in result.stdout
    assert "1 awaiting moderation" in result.stdout
    assert "Mallory \\x1b[5m" in result.stdout  # the author column shows its start


def test_unreachable_redis_is_one_line_and_exit_code_3(sqlite_settings):
    settings = sqlite_settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    result = platformctl(settings, "dashboard", "--once")
    assert result.returncode == 3
    assert result.stderr.startswith("error: Redis is not reachable")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org", "http://"])
def test_a_url_that_is_not_http_is_one_line_and_exit_code_2(sqlite_settings, url):
    result = platformctl(sqlite_settings, "dashboard", "--once", "--url", url)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --url") and "http://" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
