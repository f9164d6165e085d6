"""The site configuration tells the widget whether e-mail is sent, so that it offers readers a
subscription to new posts only where the confirmation e-mail can arrive. Real Redis and SQL."""

from __future__ import annotations

import pytest

from appliance.settings import Settings
from tests.web.conftest import API, ORIGIN, assert_error


@pytest.fixture(params=["", "127.0.0.1"], ids=["no-smtp", "smtp"])
def settings(request, make_settings, database_url) -> Settings:
    return make_settings(database_url, smtp_host=request.param)


async def test_the_config_says_whether_e_mail_is_sent(client, settings):
    response = await client.get(f"{API}/config")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["email"] is bool(settings.smtp_host)
    assert [reaction["name"] for reaction in body["reactions"]] == ["view", "like", "applause"]


async def test_the_flag_is_documented_in_openapi(client, settings):
    schema = await (await client.get("/openapi.json")).get_json()
    answer = schema["paths"]["/api/v1/sites/{site}/config"]["get"]["responses"]["200"]
    config = answer["content"]["application/json"]["schema"]
    assert "email" in config["required"]
    assert config["properties"]["email"]["type"] == "boolean"
    assert "subscribe" in config["properties"]["email"]["description"]


async def test_subscriptions_are_refused_where_no_e_mail_is_sent(client, settings, redis_client):
    response = await client.post(f"{API}/subscriptions", headers={"Origin": ORIGIN},
                                 json={"email": "reader@example.org", "list": "posts"})
    if settings.smtp_host:
        assert response.status_code == 202
        assert redis_client.xlen("ov:stream:notifications") == 1
    else:
        await assert_error(response, 409, "email_disabled")
        assert redis_client.xlen("ov:stream:notifications") == 0  # nothing queued
