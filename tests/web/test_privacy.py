"""A reader's data on request: export and erase through the admin API and the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from appliance.services import tokens
from appliance.storage import comment_store
from appliance.workers.listener import build_listener
from cli.main import app as cli_app
from tests.web.conftest import API, SITE, assert_error

READER = "visitor-privacy-1"
BASE = f"/api/v1/admin/sites/{SITE}/visitors"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def leave_traces(client, redis_client, database) -> str:
    for reaction, amount in (("like", 1), ("applause", 7), ("view", 1)):
        response = await client.post(f"{API}/interactions", json={
            "path": "/p", "reaction": reaction, "amount": amount, "visitor": READER})
        assert response.status_code == 200
    posted = await client.post(f"{API}/comments", json={
        "path": "/p", "body": "my words", "visitor": READER, "author_name": "Reader",
        "author_email": "reader@example.org"})
    build_listener(redis_client, database).run_once()
    return (await posted.get_json())["id"]


async def test_export_then_erase_through_the_admin_api(client, database, redis_client):
    comment_id = await leave_traces(client, redis_client, database)
    token = tokens.create_token(database, "privacy", "admin").token
    exported = await client.post(f"{BASE}/export", json={"visitor": READER},
                                 headers=bearer(token))
    assert exported.status_code == 200
    body = await exported.get_json()
    assert {(r["reaction"], r["value"]) for r in body["reactions"]} == {("like", "1"),
                                                                        ("applause", "7")}
    assert [c["author_email"] for c in body["comments"]] == ["reader@example.org"]
    erased = await client.post(f"{BASE}/erase", json={"visitor": READER}, headers=bearer(token))
    assert await erased.get_json() == {"reaction_states": 2, "comments": 1}
    stored = comment_store.get_comment(database, comment_id)
    assert (stored.status, stored.author_email, stored.body_markdown, stored.visitor_hash) == \
        ("deleted", "", "", "")
    again = await (await client.post(f"{BASE}/export", json={"visitor": READER},
                                     headers=bearer(token))).get_json()
    assert again["reactions"] == [] and again["comments"] == []
    totals = await (await client.get(f"{API}/totals?path=/p")).get_json()
    assert totals["totals"] == {"view": 1, "like": 1, "applause": 7}  # aggregates stay
    moderator = tokens.create_token(database, "mod", "moderate").token
    await assert_error(await client.post(f"{BASE}/erase", json={"visitor": READER},
                                         headers=bearer(moderator)), 403, "forbidden")
    await assert_error(await client.post(f"{BASE}/export", json={"visitor": "bad id"},
                                         headers=bearer(token)), 400, "invalid_input")


async def test_export_and_erase_from_the_cli(client, database, redis_client, settings):
    await leave_traces(client, redis_client, database)
    env = {"OVATION_DATA_DIR": str(settings.data_dir), "OVATION_REDIS_URL": settings.redis_url,
           "OVATION_DATABASE_URL": settings.database_url, "OVATION_SECRET_KEY": "test-secret"}
    runner = CliRunner()
    exported = runner.invoke(cli_app, ["visitor", "export", SITE, READER], env=env)
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["comments"][0]["body_markdown"] == "my words"
    erased = runner.invoke(cli_app, ["visitor", "erase", SITE, READER, "--yes"], env=env)
    assert erased.exit_code == 0 and "2 reaction states and 1 comments" in erased.output
    bad = runner.invoke(cli_app, ["visitor", "erase", SITE, "x", "--yes"], env=env)
    assert bad.exit_code != 0 and "Traceback" not in bad.output
