"""platformctl comments: list, approve, reject, spam, delete, ban — against real Redis and SQL."""

from __future__ import annotations

import dataclasses

import pytest
from typer.testing import CliRunner

from appliance.services.comments import CommentInput, CommentService
from appliance.services.sites import add_site
from appliance.services.sql_runner import SqlRunner
from appliance.storage import comment_store
from appliance.storage.redis_client import async_redis
from appliance.storage.site_store import get_site, update_site
from appliance.workers.listener import build_listener
from cli.main import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path, settings) -> dict[str, str]:
    return {"OVATION_DATA_DIR": str(settings.data_dir), "OVATION_REDIS_URL": settings.redis_url,
            "OVATION_DATABASE_URL": settings.database_url, "OVATION_SECRET_KEY": "test-secret",
            "COLUMNS": "250"}


@pytest.fixture
async def posted(settings, database, redis_client):
    """Two pending comments on a pre-moderated site, stored by the listener."""
    add_site(database, "blog", [])
    update_site(database, dataclasses.replace(get_site(database, "blog"), moderation="all"))
    client = async_redis(settings)
    sql = SqlRunner()
    service = CommentService(client, database, settings, sql.run)
    site = get_site(database, "blog")
    ids = []
    for n, body in enumerate(["A fine post", "Cheap \x1b[31mpills\x1b[0m [bold]now[/bold]"]):
        accepted = await service.submit(site, CommentInput(
            path="/post", body=body, visitor=f"visitor-cli-{n:04d}", author_name=f"Reader {n}"),
            f"198.51.100.{n + 1}")
        ids.append(accepted.id)
    build_listener(redis_client, database).run_once()
    await client.aclose()
    sql.close()
    return ids


def invoke(env, *args):
    return runner.invoke(app, list(args), env=env)


def test_list_pending_shows_text_inert(env, posted):
    result = invoke(env, "comments", "list", "--pending")
    assert result.exit_code == 0, result.output
    assert posted[0] in result.output and posted[1] in result.output
    assert "\x1b" not in result.output  # no terminal escape sequence from a comment
    assert "[bold]now[/bold]" in result.output  # rich markup shown literally, not applied


def test_approve_reject_spam_delete(env, posted, database):
    good, bad = posted
    assert invoke(env, "comments", "approve", good).exit_code == 0
    assert comment_store.get_comment(database, good).status == "approved"
    assert invoke(env, "comments", "reject", bad).exit_code == 0
    assert comment_store.get_comment(database, bad).status == "rejected"
    assert invoke(env, "comments", "spam", bad).exit_code == 0
    assert comment_store.get_comment(database, bad).status == "spam"
    assert invoke(env, "comments", "delete", good).exit_code == 0
    deleted = comment_store.get_comment(database, good)
    assert deleted.status == "deleted" and deleted.body_html == ""
    listed = invoke(env, "comments", "list", "--status", "spam")
    assert bad in listed.output and good not in listed.output


def test_a_deleted_comment_cannot_be_approved(env, posted, database):
    # Approving it showed an empty comment and counted it: its text is gone for good.
    good, _bad = posted
    assert invoke(env, "comments", "delete", good).exit_code == 0
    result = invoke(env, "comments", "approve", good)
    assert result.exit_code == 1 and "cannot be approved" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert comment_store.get_comment(database, good).status == "deleted"


def test_ban_bans_visitor_and_network(env, posted, database):
    result = invoke(env, "comments", "ban", posted[1], "--reason", "spam")
    assert result.exit_code == 0, result.output
    stored = comment_store.get_comment(database, posted[1])
    assert stored.status == "spam"
    assert comment_store.is_banned(database, "blog", stored.visitor_hash, "")
    assert comment_store.is_banned(database, "blog", "", stored.ip_hash)


@pytest.mark.parametrize("args", [
    ("comments", "approve", "0" * 32),
    ("comments", "ban", "0" * 32),
    ("comments", "list", "--status", "burnt"),
])
def test_bad_moderation_input_is_one_line(env, posted, args):
    result = invoke(env, *args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_site_set_moderation_owner_and_applause_cap(env, posted, database):
    result = invoke(env, "site", "set", "blog", "--moderation", "first_time",
                    "--owner-email", "owner@blog.example", "--applause-cap", "7")
    assert result.exit_code == 0, result.output
    record = get_site(database, "blog")
    assert (record.moderation, record.owner_email) == ("first_time", "owner@blog.example")
    assert record.reaction_options == {"applause": {"per_visitor_cap": 7}}
    bad = invoke(env, "site", "set", "blog", "--moderation", "sometimes")
    assert bad.exit_code == 2 and "--moderation must be one of" in bad.output
    bad = invoke(env, "site", "set", "blog", "--owner-email", "nobody")
    assert bad.exit_code == 2 and "not an e-mail address" in bad.output
