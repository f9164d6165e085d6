"""Every HTTP route through the real app, on real Redis and real SQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from appliance.jobs.flush import flush_once
from appliance.services.sites import add_site
from appliance.storage import counter_store as keys
from appliance.storage.redis_client import sync_redis
from appliance.storage.site_store import SiteRecord, update_site
from tests.web.conftest import (
    API,
    ORIGIN,
    OTHER_VISITOR,
    SITE,
    VISITOR,
    ZERO,
    assert_error,
    like,
    totals_of,
)

PUBLIC_ROUTES = {
    "/api/v1/sites/{site}/interactions": "post",
    "/api/v1/sites/{site}/totals": "get",
    "/api/v1/sites/{site}/totals/batch": "post",
    "/api/v1/sites/{site}/config": "get",
}
CDN_URL = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//""", re.IGNORECASE)


async def interact(client, **body):
    body.setdefault("path", "/p")
    body.setdefault("visitor", VISITOR)
    response = await client.post(f"{API}/interactions", json=body)
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_json()


# -- interactions and totals -------------------------------------------------------------------

async def test_a_like_is_recorded_once_and_answered_with_live_totals(client):
    first = await interact(client, reaction="like")
    assert first == {"path": "/p", "applied": 1, "totals": {**ZERO, "like": 1},
                     "visitor": {"like": True, "applause": 0}, "stale": False}
    again = await interact(client, path="/p/", reaction="like")
    assert again["applied"] == 0 and again["totals"]["like"] == 1
    other = await interact(client, reaction="like", visitor=OTHER_VISITOR)
    assert other["applied"] == 1 and other["totals"]["like"] == 2


async def test_a_like_can_be_withdrawn(client):
    await interact(client, reaction="like")
    withdrawn = await interact(client, reaction="like", action="remove")
    assert withdrawn["applied"] == -1
    assert withdrawn["totals"]["like"] == 0
    assert withdrawn["visitor"]["like"] is False


async def test_applause_adds_the_amount_up_to_the_cap(client, settings):
    assert (await interact(client, reaction="applause", amount=30))["applied"] == 30
    capped = await interact(client, reaction="applause", amount=settings.applause_cap)
    assert capped["applied"] == settings.applause_cap - 30
    assert capped["totals"]["applause"] == settings.applause_cap
    assert capped["visitor"]["applause"] == settings.applause_cap


async def test_a_view_counts_once_per_visitor(client):
    assert (await interact(client, reaction="view"))["applied"] == 1
    assert (await interact(client, reaction="view"))["applied"] == 0
    assert await totals_of(client) == {**ZERO, "view": 1}


async def test_totals_read_one_page_with_and_without_the_visitor(client):
    await interact(client, path="https://blog.example/p/?utm_source=x#top", reaction="like")
    response = await client.get(f"{API}/totals", query_string={"path": "/p", "visitor": VISITOR})
    assert response.status_code == 200
    assert await response.get_json() == {"path": "/p", "totals": {**ZERO, "like": 1},
                                         "visitor": {"like": True, "applause": 0},
                                         "comments": 0, "stale": False}
    response = await client.get(f"{API}/totals?path=/p/index.html")
    body = await response.get_json()
    assert body["path"] == "/p" and body["totals"]["like"] == 1
    assert body.get("visitor") is None


async def test_totals_of_an_unseen_page_are_zero(client):
    assert await totals_of(client, "/never/seen") == ZERO


async def test_batch_totals_answer_every_path_in_order(client):
    await interact(client, path="/a", reaction="applause", amount=3)
    await interact(client, path="/b", reaction="like")
    response = await client.post(f"{API}/totals/batch",
                                 json={"paths": ["/b", "/a/", "/c", "/a"], "visitor": VISITOR})
    assert response.status_code == 200
    pages = (await response.get_json())["pages"]
    assert [page["path"] for page in pages] == ["/b", "/a", "/c", "/a"]
    assert [page["totals"] for page in pages] == [
        {**ZERO, "like": 1}, {**ZERO, "applause": 3}, ZERO, {**ZERO, "applause": 3}]
    assert pages[1]["visitor"] == {"like": False, "applause": 3}


async def test_batch_of_the_configured_maximum_is_accepted(client, settings):
    paths = [f"/post-{n}" for n in range(settings.max_batch_paths)]
    response = await client.post(f"{API}/totals/batch", json={"paths": paths})
    assert response.status_code == 200
    assert len((await response.get_json())["pages"]) == settings.max_batch_paths


async def test_totals_survive_a_flush_to_sql(client, settings, database):
    await interact(client, reaction="applause", amount=4)
    await interact(client, reaction="like")
    redis_client = sync_redis(settings)
    try:
        report = flush_once(redis_client, database)
    finally:
        redis_client.close()
    assert report.counters == 2
    assert await totals_of(client) == {**ZERO, "applause": 4, "like": 1}
    again = await interact(client, reaction="applause", amount=1, visitor=OTHER_VISITOR)
    assert again["totals"]["applause"] == 5


async def test_a_published_only_site_refuses_unknown_pages(client, database, redis_client):
    add_site(database, "strict", [], accept_unpublished_pages=False)
    response = await client.post("/api/v1/sites/strict/interactions",
                                 json={"path": "/draft", "reaction": "like", "visitor": VISITOR})
    await assert_error(response, 404, "unknown_page")
    assert redis_client.hgetall(keys.STATS) == {}


# -- site configuration ------------------------------------------------------------------------

async def test_config_lists_the_reaction_types(client, settings):
    response = await client.get(f"{API}/config")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["site"] == SITE and body["title"] == "A blog"
    reactions = {reaction["name"]: reaction for reaction in body["reactions"]}
    assert list(reactions) == ["view", "like", "applause"]
    assert reactions["like"]["kind"] == "toggle"
    assert reactions["applause"]["kind"] == "counter"
    assert reactions["applause"]["per_visitor_cap"] == settings.applause_cap
    assert reactions["view"]["max_amount"] == 1


async def test_config_follows_the_site_reaction_options(client, database):
    update_site(database, SiteRecord(name=SITE, origins=(ORIGIN,), reaction_options={
        "applause": {"per_visitor_cap": 3}}))  # before the app's first (cached) lookup
    body = await (await client.get(f"{API}/config")).get_json()
    caps = {reaction["name"]: reaction["per_visitor_cap"] for reaction in body["reactions"]}
    assert caps["applause"] == 3
    assert (await interact(client, reaction="applause", amount=10))["applied"] == 3


# -- operations --------------------------------------------------------------------------------

async def test_healthz_answers_without_dependencies(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert (await response.get_json())["status"] == "ok"


async def test_readyz_checks_redis_and_the_database(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok",
                                         "checks": {"redis": "ok", "database": "ok"}}


async def test_metrics_count_interactions_in_prometheus_text(client):
    await like(client)
    await interact(client, reaction="applause", amount=5)
    await interact(client, reaction="applause", amount=5, visitor=OTHER_VISITOR)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = await response.get_data(as_text=True)
    assert 'ovation_interactions_total{reaction="like"} 1.0' in text
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    assert samples[("ovation_interactions_total", (("reaction", "applause"),))] == 2
    assert samples[("ovation_pending_counters", ())] == 2  # like and applause of /p
    assert samples[("ovation_flush_batches_total", ())] == 0


# -- the contract and the pages ----------------------------------------------------------------

async def test_the_openapi_spec_is_built_once(client):
    """It used to be rebuilt on every read (a second of CPU on a loaded machine)."""
    first = await (await client.get("/openapi.json")).get_json()
    provider = client.app.extensions["QUART_SCHEMA"].openapi_provider
    assert provider.schema() is provider.schema()
    assert await (await client.get("/openapi.json")).get_json() == first


async def test_openapi_documents_every_public_route_with_schemas(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = await response.get_json()
    assert spec["openapi"].startswith("3.")
    schemas = spec["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        ref = schema.get("$ref")
        return schemas[ref.rsplit("/", 1)[1]] if ref else schema

    for route, method in PUBLIC_ROUTES.items():
        operation = spec["paths"][route][method]
        assert "public" in operation["tags"]
        assert {"in": "path", "name": "site", "required": True,
                "schema": {"type": "string"}} in operation["parameters"]
        responses = operation["responses"]
        ok = resolve(responses["200"]["content"]["application/json"]["schema"])
        assert ok["type"] == "object" and ok["properties"], route
        for status in ("403", "404", "503"):
            error = resolve(responses[status]["content"]["application/json"]["schema"])
            assert resolve(error["properties"]["error"])["required"] == ["code", "message"]
        if method == "post":
            body = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
            assert body["additionalProperties"] is False and body["required"], route
            assert "400" in responses

    interaction = spec["paths"]["/api/v1/sites/{site}/interactions"]["post"]
    body = resolve(interaction["requestBody"]["content"]["application/json"]["schema"])
    assert set(body["required"]) == {"path", "reaction", "visitor"}
    assert body["properties"]["amount"]["type"] == "integer"
    assert body["properties"]["action"]["enum"] == ["add", "remove"]
    assert body["properties"]["visitor"]["pattern"] == "^[A-Za-z0-9_-]+$"
    batch = spec["paths"]["/api/v1/sites/{site}/totals/batch"]["post"]
    batch_body = resolve(batch["requestBody"]["content"]["application/json"]["schema"])
    assert batch_body["required"] == ["paths"]

    query = {parameter["name"]: parameter for parameter in
             spec["paths"]["/api/v1/sites/{site}/totals"]["get"]["parameters"]
             if parameter["in"] == "query"}
    assert query["path"].get("required") is True
    assert query["path"]["schema"]["maxLength"] == 4096
    assert not query["visitor"].get("required")
    for route in ("/healthz", "/readyz", "/metrics"):
        assert route in spec["paths"]


async def test_docs_are_served_locally_without_a_cdn(client):
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = await response.get_data(as_text=True)
    assert not CDN_URL.search(html), html
    assets = re.findall(r"""(?:src|href)="([^"]+)\"""", html)
    assert "/docs/assets/swagger-ui-bundle.js" in assets
    for asset in assets:
        assert asset.startswith("/"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        if asset.endswith(".js") and "bundle" not in asset:
            script = await served.get_data(as_text=True)
            assert not re.search(r"https?://", script), asset
            assert "/openapi.json" in script
            # Swagger UI's default would fetch a badge from validator.swagger.io.
            assert re.search(r"validatorUrl:\s*null", script), asset


async def test_the_demo_page_is_served_with_its_assets(client, settings):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = await response.get_data(as_text=True)
    assert "{{" not in html
    assert 'href="/demo"' in html  # the landing page links to the demo post (tests/browser)
    assert not CDN_URL.search(html)
    for asset in re.findall(r"""(?:src|href)="(/static/[^"]+)\"""", html):
        assert (await client.get(asset)).status_code == 200, asset
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_own_pages_carry_a_content_security_policy(client):
    for url in ("/", "/demo", "/docs"):
        response = await client.get(url)
        assert response.status_code == 200, url
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    api = await client.get(f"{API}/totals?path=/p")
    assert "Content-Security-Policy" not in api.headers  # JSON answers need none
