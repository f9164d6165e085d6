"""`platformctl publish`, `token`, `site set --feed` and `feeds poll` on real Redis and real SQL:
what they print, what they store, and one-line errors (never a traceback) for bad input."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import redis
from typer.testing import CliRunner

from appliance import events
from appliance.storage.database import open_database
from appliance.storage.models import AdminToken, Page
from appliance.storage.site_store import get_site
from appliance.workers.listener import build_listener
from cli.main import app
from tests.appliance.test_feeds import RSS, FeedServer, feed_server  # noqa: F401 - a fixture

runner = CliRunner()


@pytest.fixture
def env(tmp_path, redis_url, database_url) -> dict[str, str]:
    return {"OVATION_DATA_DIR": str(tmp_path / "data"), "OVATION_REDIS_URL": redis_url,
            "OVATION_DATABASE_URL": database_url, "OVATION_SECRET_KEY": "k", "COLUMNS": "200"}


@pytest.fixture
def ready(env) -> dict[str, str]:
    """Migrated, with the site `blog`."""
    assert invoke(env, "migrate").exit_code == 0
    added = invoke(env, "site", "add", "blog", "--origin", "https://blog.example")
    assert added.exit_code == 0, added.output
    return env


def invoke(env: dict[str, str], *args: str):
    return runner.invoke(app, list(args), env=env)


def assert_one_line_error(result, exit_code: int, message: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert message in result.stderr, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_publish_then_listener_stores_the_page(ready, database_url, redis_url):
    result = invoke(ready, "publish", "--site", "blog", "--path", "/2026/11/hello/", "--title",
                    "Hello, world", "--published-at", "2026-11-25T10:00:00+01:00")
    assert result.exit_code == 0, result.output
    event_id = result.stdout.strip()  # the id alone on stdout, for scripts
    assert len(event_id) == 32 and event_id.isalnum()
    assert "Queued blog /2026/11/hello 'Hello, world', published 2026-11-25 09:00:00 UTC" in (
        result.stderr)

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    database = open_database(database_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(events.LIVE_CHANNEL)
    pubsub.get_message(timeout=1.0)
    assert build_listener(client, database).run_once() == 1
    with database.connection_context():
        page = Page.get(Page.path == "/2026/11/hello")
    assert (page.title, page.published_at) == ("Hello, world", dt.datetime(2026, 11, 25, 9))
    message = pubsub.get_message(timeout=2.0)
    assert events.LiveEvent.decode(message["data"]).kind == "new_post"
    [(_id, fields)] = client.xrange(events.NOTIFICATION_STREAM)
    assert fields["kind"] == "new_post" and json.loads(fields["body"])["event_id"] == event_id
    pubsub.close()
    client.close()


@pytest.mark.parametrize(("args", "exit_code", "message"), [
    (("--site", "nosuchsite", "--path", "/p", "--title", "T"), 1, "No site is named"),
    (("--site", "Bad Site", "--path", "/p", "--title", "T"), 1, "Site name"),
    (("--site", "blog", "--path", "/%ff", "--title", "T"), 1, "not UTF-8"),
    (("--site", "blog", "--path", "   ", "--title", "T"), 1, "path is empty"),
    (("--site", "blog", "--path", "/p", "--title", ""), 1, "title is empty"),
    (("--site", "blog", "--path", "/p", "--title", "x" * 501), 1, "longer than 500"),
    (("--site", "blog", "--path", "/p", "--title", "T", "--published-at", "soon"), 1,
     "not ISO 8601"),
    (("--site", "blog", "--path", "/p", "--title", "T", "--published-at", "2026-02-30"), 1,
     "not ISO 8601"),
])
def test_bad_publish_input_is_one_line_and_queues_nothing(ready, redis_url, args, exit_code,
                                                          message):
    assert_one_line_error(invoke(ready, "publish", *args), exit_code, message)
    client = redis.Redis.from_url(redis_url)
    assert client.exists(events.PUBLISH_STREAM) == 0
    client.close()


@pytest.mark.parametrize("args", [
    ("--path", "/p", "--title", "T"), ("--site", "blog", "--title", "T"),
    ("--site", "blog", "--path", "/p"),
])
def test_publish_without_a_required_option_is_a_usage_error(ready, args):
    result = invoke(ready, "publish", *args)
    assert result.exit_code == 2 and "Missing option" in result.output
    assert "Traceback" not in result.output


def test_publish_without_redis_says_so(ready, tmp_path):
    result = invoke({**ready, "OVATION_REDIS_URL": f"unix://{tmp_path}/none.sock"}, "publish",
                    "--site", "blog", "--path", "/p", "--title", "T")
    assert_one_line_error(result, 3, "Redis is not reachable")


def test_token_create_list_revoke(ready, database_url):
    created = invoke(ready, "token", "create", "deploy", "--scope", "admin", "--site", "blog")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("ovt_") and "\n" not in token
    assert "will not be shown again" in created.stderr
    assert "scope admin, site blog" in created.stderr

    reader = invoke(ready, "token", "create", "dashboard")
    assert reader.exit_code == 0 and "scope read, all sites" in reader.stderr

    listed = invoke(ready, "token", "list")
    assert listed.exit_code == 0
    assert token not in listed.output and reader.stdout.strip() not in listed.output
    assert "deploy" in listed.output and "dashboard" in listed.output
    assert "admin" in listed.output and "active" in listed.output

    database = open_database(database_url)
    with database.connection_context():
        row = AdminToken.get(AdminToken.name == "deploy")
    assert row.token_hash != token and token not in row.token_hash

    revoked = invoke(ready, "token", "revoke", str(row.id))
    assert revoked.exit_code == 0 and "Revoked token" in revoked.output
    again = invoke(ready, "token", "revoke", str(row.id))
    assert again.exit_code == 0 and "revoked already" in again.output
    assert "revoked" in invoke(ready, "token", "list").output


def test_token_list_when_there_are_none(ready):
    result = invoke(ready, "token", "list")
    assert result.exit_code == 0 and "No tokens yet" in result.output


@pytest.mark.parametrize(("args", "exit_code", "message"), [
    (("create", ""), 1, "Token name"),
    (("create", "x" * 101), 1, "Token name"),
    (("create", "deploy", "--site", "nosuchsite"), 1, "No site is named"),
    (("create", "deploy", "--site", "Bad Site"), 1, "Site name"),
    (("revoke", "999"), 1, "No token has id 999"),
])
def test_bad_token_input_is_one_line(ready, args, exit_code, message):
    assert_one_line_error(invoke(ready, "token", *args), exit_code, message)


@pytest.mark.parametrize("args", [("create", "deploy", "--scope", "root"), ("revoke", "abc"),
                                  ("create",), ("revoke",)])
def test_token_usage_errors(ready, args):
    result = invoke(ready, "token", *args)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_site_set_feed_and_no_feed(ready, database_url):
    result = invoke(ready, "site", "set", "blog", "--feed", "https://blog.example/feed.xml")
    assert result.exit_code == 0, result.output
    assert "feed https://blog.example/feed.xml" in result.output
    database = open_database(database_url)
    assert get_site(database, "blog").feed_url == "https://blog.example/feed.xml"
    # Other changes keep the feed.
    assert invoke(ready, "site", "set", "blog", "--title", "New").exit_code == 0
    assert get_site(database, "blog").feed_url == "https://blog.example/feed.xml"
    cleared = invoke(ready, "site", "set", "blog", "--no-feed")
    assert cleared.exit_code == 0 and "feed" not in cleared.output
    assert get_site(database, "blog").feed_url is None


@pytest.mark.parametrize(("args", "exit_code", "message"), [
    (("--feed", "ftp://blog.example/feed"), 1, "http:// or https://"),
    (("--feed", "blog.example/feed"), 1, "http:// or https://"),
    (("--feed", "https://blog.example/a b"), 1, "contains spaces"),
    (("--feed", "https://blog.example/f", "--no-feed"), 2, "not both"),
])
def test_bad_feed_urls_are_one_line(ready, database_url, args, exit_code, message):
    assert_one_line_error(invoke(ready, "site", "set", "blog", *args), exit_code, message)
    assert get_site(open_database(database_url), "blog").feed_url is None


def test_feeds_poll(ready, feed_server: FeedServer, database_url, redis_url):  # noqa: F811
    assert "No site has a feed" in invoke(ready, "feeds", "poll").output
    assert_one_line_error(invoke(ready, "feeds", "poll", "--site", "blog"), 1, "has no feed")
    assert_one_line_error(invoke(ready, "feeds", "poll", "--site", "nope"), 1,
                          "No site is named")

    url = feed_server.serve("/rss.xml", RSS)
    assert invoke(ready, "site", "set", "blog", "--feed", url).exit_code == 0
    first = invoke(ready, "feeds", "poll")
    assert first.exit_code == 0, first.output
    assert "blog: 2 published, 0 unchanged, 2 skipped" in first.output
    second = invoke(ready, "feeds", "poll", "--site", "blog")
    assert second.exit_code == 0 and "not modified" in second.output
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.xlen(events.PUBLISH_STREAM) == 2
    client.close()

    invoke(ready, "site", "set", "blog", "--feed", feed_server.url("/gone"))
    failed = invoke(ready, "feeds", "poll")
    assert failed.exit_code == 1
    assert "failed: HTTP 404" in failed.stdout
    assert "1 of 1 feeds failed: blog" in failed.stderr
    assert "Traceback" not in failed.output


def test_new_commands_have_help():
    for args in [["publish"], ["token", "create"], ["token", "list"], ["token", "revoke"],
                 ["feeds", "poll"], ["site", "set"]]:
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
