"""platformctl comments: list, approve, reject, spam, delete, ban — against real Redis and SQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from typer.testing import CliRunner

from appliance.errors import Forbidden
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


def test_bans_are_listed_and_unbanning_lets_the_visitor_comment_again(env, posted, database,
                                                                      settings):
    # Found by an audit: nothing could lift a ban, so a mistaken one was for ever.
    assert invoke(env, "comments", "ban", posted[1], "--reason", "oops").exit_code == 0
    listed = invoke(env, "comments", "bans", "--json")
    assert listed.exit_code == 0, listed.output
    bans = json.loads(listed.output)
    assert sorted((ban["kind"], ban["site"], ban["reason"]) for ban in bans) == [
        ("network", "blog", "oops"), ("visitor", "blog", "oops")]
    table = invoke(env, "comments", "bans", "--site", "blog")
    assert table.exit_code == 0 and all(str(ban["id"]) in table.output for ban in bans)

    lifted = invoke(env, "comments", "unban", posted[1])
    assert lifted.exit_code == 0, lifted.output
    assert len(lifted.output.strip().splitlines()) == 2
    assert json.loads(invoke(env, "comments", "bans", "--json").output) == []
    stored = comment_store.get_comment(database, posted[1])
    assert not comment_store.is_banned(database, "blog", stored.visitor_hash, stored.ip_hash)
    assert asyncio.run(comment_again(settings, database)).status == "pending"

    again = invoke(env, "comments", "unban", posted[1])
    assert again.exit_code == 1 and len(again.output.strip().splitlines()) == 1
    assert "No ban matches" in again.output


def test_unban_by_ban_id_or_only_the_visitor(env, posted, database):
    assert invoke(env, "comments", "ban", posted[0]).exit_code == 0
    result = invoke(env, "comments", "unban", posted[0], "--no-ip")
    assert result.exit_code == 0, result.output
    left = json.loads(invoke(env, "comments", "bans", "--json").output)
    assert [ban["kind"] for ban in left] == ["network"]  # --no-ip kept the network ban
    result = invoke(env, "comments", "unban", "--ban-id", str(left[0]["id"]))
    assert result.exit_code == 0 and f"Lifted ban {left[0]['id']}" in result.output
    assert comment_store.list_bans(database) == []


async def comment_again(settings, database):
    """The second reader of `posted` comments once more, from the network of their comment."""
    client = async_redis(settings)
    sql = SqlRunner()
    service = CommentService(client, database, settings, sql.run)
    try:
        return await service.submit(get_site(database, "blog"), CommentInput(
            path="/post", body="Back again", visitor="visitor-cli-0001"), "198.51.100.2")
    finally:
        await client.aclose()
        sql.close()


async def test_ban_and_unban_reach_a_running_worker_at_once(env, posted, database, settings):
    # A web worker checks comments against its own copy of the site's bans: the commands must
    # tell it (through Redis) that the copy it holds is outdated, for the very next comment.
    client = async_redis(settings)
    sql = SqlRunner()
    worker = CommentService(client, database, settings, sql.run)
    site = get_site(database, "blog")

    async def post(body: str):
        return await worker.submit(site, CommentInput(
            path="/post", body=body, visitor="visitor-cli-0001"), "198.51.100.2")

    try:
        assert (await post("Before the ban")).status == "pending"  # the worker holds a copy
        assert invoke(env, "comments", "ban", posted[1], "--keep").exit_code == 0
        with pytest.raises(Forbidden) as refused:
            await post("After the ban")
        assert refused.value.code == "banned"
        assert invoke(env, "comments", "unban", posted[1]).exit_code == 0
        assert (await post("After the unban")).status == "pending"
    finally:
        await client.aclose()
        sql.close()


@pytest.mark.parametrize(("args", "exit_code"), [
    (("comments", "unban", "--ban-id", "424242"), 1),
    (("comments", "unban", "--ban-id", "not-a-number"), 1),
    (("comments", "unban", "0" * 32), 1),
    (("comments", "unban", "no\x00id"), 1),
    (("comments", "unban"), 2),
    (("comments", "unban", "0" * 32, "--ban-id", "1"), 2),
])
def test_unban_errors_are_one_line(env, posted, args, exit_code):
    result = invoke(env, *args)
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


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
