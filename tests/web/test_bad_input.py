"""Bad input for every field of every route: a 4xx JSON error with a stable code, never a 500,
and nothing recorded. The SQL database plays no part in refusing input: SQLite only, for speed.
"""

from __future__ import annotations

import json

import pytest

from tests.web.conftest import API, VISITOR, assert_error, assert_nothing_recorded

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

JSON = {"Content-Type": "application/json"}
GOOD = {"path": "/p", "reaction": "applause", "amount": 1, "visitor": VISITOR}


def raw(data: bytes | str, **headers) -> dict:
    return {"data": data, "headers": {**JSON, **headers}}


def body(**changes) -> dict:
    """The good interaction with `changes`; a change to None removes the field."""
    payload = {**GOOD, **changes}
    return {"json": {key: value for key, value in payload.items() if value is not None}}


def case(id_: str, method: str, url: str, kwargs: dict, status: int, code: str):
    return pytest.param(method, url, kwargs, status, code, id=id_)


INTERACTIONS = f"{API}/interactions"
TOTALS = f"{API}/totals"
BATCH = f"{API}/totals/batch"
LONG_RAW = "/" + "a" * 4096  # over the 4096-character limit on the raw path
LONG_NORMALISED = "/" + "é" * 400  # 401 characters, 2401 once percent-encoded (> 1024)

BODY_CASES = [
    case("missing body", "POST", INTERACTIONS, {}, 400, "invalid_input"),
    case("empty JSON body", "POST", INTERACTIONS, raw(b""), 400, "invalid_json"),
    case("not JSON", "POST", INTERACTIONS, raw("path=/p&reaction=like"), 400, "invalid_json"),
    case("truncated JSON", "POST", INTERACTIONS, raw('{"path": "/p", '), 400, "invalid_json"),
    case("JSON not declared", "POST", INTERACTIONS,
         {"data": json.dumps(GOOD), "headers": {"Content-Type": "text/plain"}},
         400, "invalid_input"),
    case("form body", "POST", INTERACTIONS, {"form": {"path": "/p"}}, 400, "invalid_input"),
    case("non-UTF-8 bytes", "POST", INTERACTIONS, raw(b'{"path": "/\xff\xfe"}'), 400,
         "invalid_json"),
    case("UTF-16 body", "POST", INTERACTIONS, raw(json.dumps(GOOD).encode("utf-16")), 400,
         "invalid_json"),
    case("deeply nested JSON", "POST", INTERACTIONS, raw("[" * 20000 + "]" * 20000), 400,
         "invalid_json"),
    case("deeply nested field", "POST", INTERACTIONS,
         raw('{"path": ' + "[" * 20000 + "]" * 20000 + "}"), 400, "invalid_json"),
    case("integer of 5000 digits", "POST", INTERACTIONS,
         raw('{"path": "/p", "reaction": "applause", "visitor": "visitor-aaaa", "amount": '
             + "9" * 5000 + "}"), 400, "invalid_json"),
    case("JSON array", "POST", INTERACTIONS, {"json": [GOOD]}, 400, "invalid_input"),
    case("JSON string", "POST", INTERACTIONS, {"json": "/p"}, 400, "invalid_input"),
    case("JSON null", "POST", INTERACTIONS, raw("null"), 400, "invalid_input"),
    case("JSON number", "POST", INTERACTIONS, raw("42"), 400, "invalid_input"),
    case("empty object", "POST", INTERACTIONS, {"json": {}}, 400, "invalid_input"),
    case("unknown field", "POST", INTERACTIONS, body(site="blog"), 400, "invalid_input"),
    case("body over 64 KiB", "POST", INTERACTIONS,
         raw(json.dumps({**GOOD, "path": "/" + "a" * 70_000})), 413, "payload_too_large"),
]

PATH_CASES = [
    case("path missing", "POST", INTERACTIONS, body(path=None), 400, "invalid_input"),
    case("path empty", "POST", INTERACTIONS, body(path=""), 400, "invalid_input"),
    case("path blank", "POST", INTERACTIONS, body(path="   "), 400, "invalid_path"),
    case("path a number", "POST", INTERACTIONS, body(path=12), 400, "invalid_input"),
    case("path a list", "POST", INTERACTIONS, body(path=["/p"]), 400, "invalid_input"),
    case("path null", "POST", INTERACTIONS, raw('{"path": null, "reaction": "like", '
                                               '"visitor": "visitor-aaaa"}'), 400,
         "invalid_input"),
    case("path over 4096 raw", "POST", INTERACTIONS, body(path=LONG_RAW), 400, "invalid_input"),
    case("path too long normalised", "POST", INTERACTIONS, body(path=LONG_NORMALISED), 400,
         "invalid_path"),
    case("path 2000 ASCII", "POST", INTERACTIONS, body(path="/" + "a" * 2000), 400,
         "invalid_path"),
    case("path NUL", "POST", INTERACTIONS, body(path="/a\x00b"), 400, "invalid_path"),
    case("path newline", "POST", INTERACTIONS, body(path="/a\nb"), 400, "invalid_path"),
    case("path DEL", "POST", INTERACTIONS, body(path="/a\x7fb"), 400, "invalid_path"),
    case("path encoded NUL", "POST", INTERACTIONS, body(path="/a%00b"), 400, "invalid_path"),
    case("path encoded newline", "POST", INTERACTIONS, body(path="/a%0Ab"), 400,
         "invalid_path"),
    case("path percent non-UTF-8", "POST", INTERACTIONS, body(path="/%ff"), 400,
         "invalid_path"),
    case("path percent bad sequence", "POST", INTERACTIONS, body(path="/%C3%28"), 400,
         "invalid_path"),
    case("path overlong UTF-8", "POST", INTERACTIONS, body(path="/%C0%AF"), 400,
         "invalid_path"),
    case("path encoded surrogate", "POST", INTERACTIONS, body(path="/%ED%A0%80"), 400,
         "invalid_path"),
    case("path lone surrogate", "POST", INTERACTIONS,
         raw('{"path": "/\\ud800", "reaction": "like", "visitor": "visitor-aaaa"}'), 400,
         "invalid_input"),
    case("path unparsable URL", "POST", INTERACTIONS, body(path="http://[bad/p"), 400,
         "invalid_path"),
]

FIELD_CASES = [
    case("reaction missing", "POST", INTERACTIONS, body(reaction=None), 400, "invalid_input"),
    case("reaction unknown", "POST", INTERACTIONS, body(reaction="clap"), 400,
         "unknown_reaction"),
    case("reaction wrong case", "POST", INTERACTIONS, body(reaction="Like"), 400,
         "unknown_reaction"),
    case("reaction empty", "POST", INTERACTIONS, body(reaction=""), 400, "invalid_input"),
    case("reaction too long", "POST", INTERACTIONS, body(reaction="a" * 33), 400,
         "invalid_input"),
    case("reaction a number", "POST", INTERACTIONS, body(reaction=1), 400, "invalid_input"),
    case("reaction a list", "POST", INTERACTIONS, body(reaction=["like"]), 400,
         "invalid_input"),
    case("action unknown", "POST", INTERACTIONS, body(action="toggle"), 400, "invalid_input"),
    case("action upper case", "POST", INTERACTIONS, body(action="ADD"), 400, "invalid_input"),
    case("action a number", "POST", INTERACTIONS, body(action=1), 400, "invalid_input"),
    case("action true", "POST", INTERACTIONS, body(action=True), 400, "invalid_input"),
    case("remove applause", "POST", INTERACTIONS, body(action="remove"), 400,
         "unknown_reaction"),
    case("remove a view", "POST", INTERACTIONS, body(reaction="view", action="remove"), 400,
         "unknown_reaction"),
    case("amount false", "POST", INTERACTIONS, body(amount=False), 400, "invalid_input"),
    case("amount true", "POST", INTERACTIONS, body(amount=True), 400, "invalid_input"),
    case("amount a string", "POST", INTERACTIONS, body(amount="3"), 400, "invalid_input"),
    case("amount a fraction", "POST", INTERACTIONS, body(amount=1.5), 400, "invalid_input"),
    case("amount a whole float", "POST", INTERACTIONS, body(amount=2.0), 400, "invalid_input"),
    case("amount null", "POST", INTERACTIONS, raw('{"path": "/p", "reaction": "applause", '
                                                 '"amount": null, "visitor": "visitor-aaaa"}'),
         400, "invalid_input"),
    case("amount NaN", "POST", INTERACTIONS, raw('{"path": "/p", "reaction": "applause", '
                                                '"amount": NaN, "visitor": "visitor-aaaa"}'),
         400, "invalid_input"),
    case("amount zero", "POST", INTERACTIONS, body(amount=0), 400, "invalid_input"),
    case("amount negative", "POST", INTERACTIONS, body(amount=-5), 400, "invalid_input"),
    case("amount over the type's maximum", "POST", INTERACTIONS, body(amount=51), 400,
         "invalid_input"),
    case("amount over the schema's maximum", "POST", INTERACTIONS, body(amount=100_001), 400,
         "invalid_input"),
    case("amount huge", "POST", INTERACTIONS, body(amount=10**30), 400, "invalid_input"),
    case("amount 2 for a like", "POST", INTERACTIONS, body(reaction="like", amount=2), 400,
         "invalid_input"),
    case("amount 2 for a view", "POST", INTERACTIONS, body(reaction="view", amount=2), 400,
         "invalid_input"),
    case("visitor missing", "POST", INTERACTIONS, body(visitor=None), 400, "invalid_input"),
    case("visitor too short", "POST", INTERACTIONS, body(visitor="short"), 400,
         "invalid_input"),
    case("visitor too long", "POST", INTERACTIONS, body(visitor="v" * 65), 400,
         "invalid_input"),
    case("visitor with spaces", "POST", INTERACTIONS, body(visitor="has space!"), 400,
         "invalid_input"),
    case("visitor not ASCII", "POST", INTERACTIONS, body(visitor="émoji-visitor"), 400,
         "invalid_input"),
    case("visitor a number", "POST", INTERACTIONS, body(visitor=12345678), 400,
         "invalid_input"),
    case("visitor with newline", "POST", INTERACTIONS, body(visitor="visitor-aaaa\n"), 400,
         "invalid_input"),
]

TOTALS_CASES = [
    case("totals no path", "GET", TOTALS, {}, 400, "invalid_input"),
    case("totals empty path", "GET", f"{TOTALS}?path=", {}, 400, "invalid_input"),
    case("totals path twice", "GET", f"{TOTALS}?path=/a&path=/b", {}, 400, "invalid_input"),
    case("totals path as list", "GET", f"{TOTALS}?path[]=/a", {}, 400, "invalid_input"),
    case("totals unknown parameter", "GET", f"{TOTALS}?path=/p&page=2", {}, 400,
         "invalid_input"),
    case("totals path over 4096 raw", "GET", f"{TOTALS}?path={LONG_RAW}", {}, 400,
         "invalid_input"),
    case("totals path too long normalised", "GET", f"{TOTALS}?path={'/' + 'a' * 2000}", {},
         400, "invalid_path"),
    case("totals path NUL", "GET", f"{TOTALS}?path=/a%00b", {}, 400, "invalid_path"),
    case("totals path encoded NUL", "GET", f"{TOTALS}?path=/a%2500b", {}, 400, "invalid_path"),
    case("totals path percent non-UTF-8", "GET", f"{TOTALS}?path=/%25ff", {}, 400,
         "invalid_path"),
    case("totals path raw non-UTF-8", "GET", f"{TOTALS}?path=/%ff", {}, 400, "invalid_path"),
    case("totals visitor empty", "GET", f"{TOTALS}?path=/p&visitor=", {}, 400,
         "invalid_input"),
    case("totals visitor too short", "GET", f"{TOTALS}?path=/p&visitor=short", {}, 400,
         "invalid_input"),
    case("totals visitor too long", "GET", f"{TOTALS}?path=/p&visitor={'v' * 65}", {}, 400,
         "invalid_input"),
    case("totals visitor bad chars", "GET", f"{TOTALS}?path=/p&visitor=visitor%20aaaa", {},
         400, "invalid_input"),
    case("totals visitor non-UTF-8", "GET", f"{TOTALS}?path=/p&visitor=%ff%fe%fd%fc%fb%fa%f9",
         {}, 400, "invalid_input"),
]

BATCH_CASES = [
    case("batch missing body", "POST", BATCH, {}, 400, "invalid_input"),
    case("batch invalid JSON", "POST", BATCH, raw("{paths: []}"), 400, "invalid_json"),
    case("batch non-UTF-8", "POST", BATCH, raw(b'{"paths": ["/\xff"]}'), 400, "invalid_json"),
    case("batch JSON array", "POST", BATCH, {"json": ["/p"]}, 400, "invalid_input"),
    case("batch no paths", "POST", BATCH, {"json": {"visitor": VISITOR}}, 400,
         "invalid_input"),
    case("batch zero paths", "POST", BATCH, {"json": {"paths": []}}, 400, "invalid_input"),
    case("batch 101 paths", "POST", BATCH, {"json": {"paths": [f"/{n}" for n in range(101)]}},
         400, "invalid_input"),
    case("batch 1001 paths", "POST", BATCH,
         {"json": {"paths": [f"/{n}" for n in range(1001)]}}, 400, "invalid_input"),
    case("batch paths a string", "POST", BATCH, {"json": {"paths": "/p"}}, 400,
         "invalid_input"),
    case("batch path a number", "POST", BATCH, {"json": {"paths": ["/p", 3]}}, 400,
         "invalid_input"),
    case("batch path empty", "POST", BATCH, {"json": {"paths": ["/p", ""]}}, 400,
         "invalid_input"),
    case("batch path over 4096 raw", "POST", BATCH, {"json": {"paths": [LONG_RAW]}}, 400,
         "invalid_input"),
    case("batch path too long normalised", "POST", BATCH,
         {"json": {"paths": ["/p", LONG_NORMALISED]}}, 400, "invalid_path"),
    case("batch path control char", "POST", BATCH, {"json": {"paths": ["/p", "/a\tb"]}}, 400,
         "invalid_path"),
    case("batch path bad percent", "POST", BATCH, {"json": {"paths": ["/%ff"]}}, 400,
         "invalid_path"),
    case("batch visitor bad", "POST", BATCH, {"json": {"paths": ["/p"], "visitor": "x"}}, 400,
         "invalid_input"),
    case("batch unknown field", "POST", BATCH, {"json": {"paths": ["/p"], "site": "blog"}}, 400,
         "invalid_input"),
    case("batch over 64 KiB", "POST", BATCH,
         {"json": {"paths": ["/" + "a" * 1000 for _ in range(70)]}}, 413, "payload_too_large"),
]

SITE_CASES = [
    case("interaction unknown site", "POST", "/api/v1/sites/nope/interactions", body(), 404,
         "unknown_site"),
    case("totals unknown site", "GET", "/api/v1/sites/nope/totals?path=/p", {}, 404,
         "unknown_site"),
    case("batch unknown site", "POST", "/api/v1/sites/nope/totals/batch",
         {"json": {"paths": ["/p"]}}, 404, "unknown_site"),
    case("config unknown site", "GET", "/api/v1/sites/nope/config", {}, 404, "unknown_site"),
    case("site upper case", "POST", "/api/v1/sites/BLOG/interactions", body(), 404,
         "unknown_site"),
    case("site bad chars", "POST", "/api/v1/sites/bl_og!/interactions", body(), 404,
         "unknown_site"),
    case("site leading dash", "GET", "/api/v1/sites/-blog/config", {}, 404, "unknown_site"),
    case("site encoded NUL", "GET", "/api/v1/sites/bl%00og/config", {}, 404, "unknown_site"),
    case("site not ASCII", "GET", "/api/v1/sites/bl%C3%A9og/config", {}, 404, "unknown_site"),
    case("site too long", "GET", f"/api/v1/sites/{'a' * 64}/config", {}, 404, "unknown_site"),
]

ROUTE_CASES = [
    case("unknown route", "GET", "/api/v1/nope", {}, 404, "not_found"),
    case("unknown site route", "GET", f"{API}/nope", {}, 404, "not_found"),
    case("unknown docs asset", "GET", "/docs/assets/evil.js", {}, 404, "not_found"),
    case("unknown static file", "GET", "/static/nope.js", {}, 404, "not_found"),
    case("static outside its folder", "GET", "/static/../app.py", {}, 404, "not_found"),
    case("GET interactions", "GET", INTERACTIONS, {}, 405, "method_not_allowed"),
    case("PUT interactions", "PUT", INTERACTIONS, body(), 405, "method_not_allowed"),
    case("DELETE interactions", "DELETE", INTERACTIONS, {}, 405, "method_not_allowed"),
    case("POST totals", "POST", TOTALS, body(), 405, "method_not_allowed"),
    case("GET batch", "GET", BATCH, {}, 405, "method_not_allowed"),
    case("POST config", "POST", f"{API}/config", {"json": {}}, 405, "method_not_allowed"),
    case("POST healthz", "POST", "/healthz", {}, 405, "method_not_allowed"),
    case("POST metrics", "POST", "/metrics", {}, 405, "method_not_allowed"),
    case("plain HTTP to the live socket", "GET", f"{API}/live", {}, 400, "invalid_input"),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "status", "code"), [
    *BODY_CASES, *PATH_CASES, *FIELD_CASES, *TOTALS_CASES, *BATCH_CASES, *SITE_CASES,
    *ROUTE_CASES])
async def test_bad_input_is_refused_with_a_stable_code_and_changes_nothing(
        client, redis_client, method, url, kwargs, status, code):
    response = await client.open(url, method=method, **kwargs)
    await assert_error(response, status, code)
    await assert_nothing_recorded(client, redis_client)


async def test_validation_errors_name_the_field(client):
    response = await client.post(INTERACTIONS, **body(amount="3"))
    error = await assert_error(response, 400, "invalid_input")
    assert error["message"].startswith("amount:")
    assert error["details"] == {"fields": ["amount"]}
    response = await client.post(INTERACTIONS, **body(visitor=None, reaction=None))
    error = await assert_error(response, 400, "invalid_input")
    assert sorted(error["details"]["fields"]) == ["reaction", "visitor"]


async def test_the_good_request_of_these_cases_is_accepted(client):
    """The cases above fail because of the one field they change, not the rest of the body."""
    response = await client.post(INTERACTIONS, **body())
    assert response.status_code == 200
    assert (await response.get_json())["applied"] == 1
    response = await client.post(BATCH, json={"paths": ["/p"], "visitor": VISITOR})
    assert response.status_code == 200
    response = await client.get(f"{TOTALS}?path=/p&visitor={VISITOR}")
    assert response.status_code == 200
