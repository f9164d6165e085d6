"""The admin moderation API: list, moderate and ban, with scoped tokens, live effects."""

from __future__ import annotations

import dataclasses

import pytest

from appliance.services import tokens
from appliance.storage import comment_store
from appliance.storage.site_store import get_site, update_site
from appliance.workers.listener import build_listener
from tests.web.conftest import SITE, assert_error

BASE = f"/api/v1/admin/sites/{SITE}"
PUBLIC = f"/api/v1/sites/{SITE}/comments"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def moderator(app, database) -> str:
    return tokens.create_token(database, "mod", "moderate").token


@pytest.fixture
async def pending(client, database, redis_client) -> list[str]:
    update_site(database, dataclasses.replace(get_site(database, SITE), moderation="all"))
    ids = []
    for n in range(2):
        response = await client.post(PUBLIC, json={
            "path": "/post", "body": f"comment {n}", "visitor": f"visitor-admin-{n}",
            "author_email": f"reader{n}@example.org"})
        assert response.status_code == 202, await response.get_data(as_text=True)
        ids.append((await response.get_json())["id"])
    build_listener(redis_client, database).run_once()
    return ids


async def test_moderators_list_pending_with_private_fields(client, moderator, pending):
    response = await client.get(f"{BASE}/comments?status=pending", headers=bearer(moderator))
    assert response.status_code == 200
    body = await response.get_json()
    assert sorted(c["id"] for c in body["comments"]) == sorted(pending)
    assert {c["author_email"] for c in body["comments"]} == {"reader0@example.org",
                                                             "reader1@example.org"}
    assert body["counts"] == {"pending": 2}
    assert response.headers["Cache-Control"] == "no-store"


async def test_approving_shows_the_comment_to_readers(client, moderator, pending, database):
    response = await client.post(f"{BASE}/comments/moderate", headers=bearer(moderator),
                                 json={"ids": [pending[0]], "status": "approved"})
    assert response.status_code == 200
    assert (await response.get_json())["changed"] == [pending[0]]
    thread = await (await client.get(PUBLIC, query_string={"path": "/post"})).get_json()
    assert [c["id"] for c in thread["comments"]] == [pending[0]] and thread["total"] == 1


async def test_banning_refuses_the_next_comment(client, moderator, pending, database):
    response = await client.post(f"{BASE}/bans", headers=bearer(moderator),
                                 json={"comment_id": pending[1], "reason": "spam"})
    assert response.status_code == 200
    assert (await response.get_json())["banned"] == ["visitor", "network"]
    assert comment_store.get_comment(database, pending[1]).status == "spam"
    again = await client.post(PUBLIC, json={"path": "/post", "body": "I am back",
                                            "visitor": "visitor-admin-1"})
    await assert_error(again, 403, "banned")


async def test_scopes_and_sites_are_enforced(client, database, pending):
    reader = tokens.create_token(database, "ro", "read").token
    await assert_error(await client.get(f"{BASE}/comments", headers=bearer(reader)), 403,
                       "forbidden")
    from appliance.services.sites import add_site

    add_site(database, "elsewhere", [])
    other_site = tokens.create_token(database, "other", "moderate", site="elsewhere").token
    await assert_error(await client.post(f"{BASE}/comments/moderate",
                                         headers=bearer(other_site),
                                         json={"ids": [pending[0]], "status": "approved"}),
                       403, "forbidden")
    await assert_error(await client.get(f"{BASE}/comments"), 401, "unauthorized")


@pytest.mark.parametrize("body", [
    {}, {"ids": [], "status": "approved"}, {"ids": ["x"], "status": "approved"},
    {"ids": ["0" * 32], "status": "burnt"}, {"ids": "0" * 32, "status": "approved"},
    {"ids": ["0" * 32], "status": "approved", "extra": 1},
])
async def test_bad_moderation_requests(client, moderator, body):
    response = await client.post(f"{BASE}/comments/moderate", headers=bearer(moderator),
                                 json=body)
    await assert_error(response, 400, "invalid_input")


async def test_unknown_or_foreign_comment_ids(client, moderator, pending):
    response = await client.post(f"{BASE}/comments/moderate", headers=bearer(moderator),
                                 json={"ids": ["0" * 32], "status": "approved"})
    await assert_error(response, 404, "unknown_comment")
    response = await client.post(f"{BASE}/bans", headers=bearer(moderator),
                                 json={"comment_id": "1" * 32})
    await assert_error(response, 404, "unknown_comment")


# -- lifting bans ------------------------------------------------------------------------------

async def test_a_ban_is_listed_and_lifted_and_the_visitor_comments_again(client, moderator,
                                                                        pending):
    # Found by an audit: nothing could lift a ban, so a mistaken one was for ever.
    response = await client.post(f"{BASE}/bans", headers=bearer(moderator),
                                 json={"comment_id": pending[1], "reason": "oops"})
    assert response.status_code == 200
    listed = await client.get(f"{BASE}/bans", headers=bearer(moderator))
    assert listed.status_code == 200 and listed.headers["Cache-Control"] == "no-store"
    bans = (await listed.get_json())["bans"]
    assert sorted(ban["kind"] for ban in bans) == ["network", "visitor"]
    assert {(ban["site"], ban["reason"]) for ban in bans} == {(SITE, "oops")}
    assert all(len(ban["value_hash"]) >= 16 for ban in bans)
    mine = await client.get(f"{BASE}/bans", query_string={"comment_id": pending[1]},
                            headers=bearer(moderator))
    assert sorted(ban["id"] for ban in (await mine.get_json())["bans"]) == \
        sorted(ban["id"] for ban in bans)

    for ban in bans:
        lifted = await client.delete(f"{BASE}/bans/{ban['id']}", headers=bearer(moderator))
        assert lifted.status_code == 200 and await lifted.get_json() == ban
    assert (await (await client.get(f"{BASE}/bans", headers=bearer(moderator)))
            .get_json())["bans"] == []
    again = await client.post(PUBLIC, json={"path": "/post", "body": "I am back",
                                            "visitor": "visitor-admin-1"})
    assert again.status_code == 202, await again.get_data(as_text=True)
    gone = await client.delete(f"{BASE}/bans/{bans[0]['id']}", headers=bearer(moderator))
    await assert_error(gone, 404, "unknown_ban")


async def test_lifting_bans_refuses_unknown_foreign_and_unauthorised(client, database, moderator,
                                                                     pending):
    from appliance.services.sites import add_site

    add_site(database, "elsewhere", [])
    comment_store.add_ban(database, "elsewhere", "visitor", "e" * 32, "")
    foreign = comment_store.list_bans(database, "elsewhere")[0].id
    for ban_id in (str(foreign), "0", "999999999", "abc", "1" * 40, "-1"):
        response = await client.delete(f"{BASE}/bans/{ban_id}", headers=bearer(moderator))
        await assert_error(response, 404, "unknown_ban")
    assert comment_store.get_ban(database, foreign) is not None  # another site's: untouched
    unknown = await client.get(f"{BASE}/bans", query_string={"comment_id": "0" * 32},
                               headers=bearer(moderator))
    await assert_error(unknown, 404, "unknown_comment")
    for query in ({"comment_id": "nope"}, {"limit": "0"}, {"extra": "1"}):
        response = await client.get(f"{BASE}/bans", query_string=query,
                                    headers=bearer(moderator))
        await assert_error(response, 400, "invalid_input")
    reader = tokens.create_token(database, "ro", "read").token
    await assert_error(await client.get(f"{BASE}/bans", headers=bearer(reader)), 403,
                       "forbidden")
    await assert_error(await client.delete(f"{BASE}/bans/{foreign}", headers=bearer(reader)),
                       403, "forbidden")
    await assert_error(await client.delete(f"{BASE}/bans/{foreign}"), 401, "unauthorized")


async def test_openapi_documents_the_ban_routes(client):
    spec = await (await client.get("/openapi.json")).get_json()
    for route, method, ok in [("/api/v1/admin/sites/{site}/bans", "get", "200"),
                              ("/api/v1/admin/sites/{site}/bans/{ban_id}", "delete", "200")]:
        operation = spec["paths"][route][method]
        assert operation["tags"] == ["admin"]
        assert operation["security"] == [{"bearer": []}]
        assert {ok, "401", "403", "404"} <= set(operation["responses"])
