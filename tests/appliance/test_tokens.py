"""Admin tokens on real SQL (SQLite and PostgreSQL): shown once, stored as a hash, checked by
scope and site, revocable at once."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from appliance.errors import Forbidden, InvalidInput, Unauthorized, UnknownSite, UnknownToken
from appliance.services import tokens
from appliance.services.sites import add_site
from appliance.storage.models import AdminToken


@pytest.fixture
def sites(database):
    add_site(database, "blog", ["https://blog.example"])
    add_site(database, "other", [])
    return database


def stored_columns(database) -> list[str]:
    with database.connection_context():
        return [str(value) for row in AdminToken.select().dicts() for value in row.values()]


def test_a_token_is_shown_once_and_stored_only_as_its_hash(sites):
    created = tokens.create_token(sites, "deploy", "admin")
    assert created.token.startswith("ovt_") and len(created.token) > 40
    assert created.token not in repr(created) and created.token not in repr(created.record)
    columns = stored_columns(sites)
    assert created.token not in columns
    with sites.connection_context():
        row = AdminToken.get_by_id(created.record.id)
    assert row.token_hash == hashlib.sha256(created.token.encode()).hexdigest()
    assert row.token_hash != created.token
    assert (row.name, row.scopes, row.site, row.revoked_at) == ("deploy", "admin", None, None)
    other = tokens.create_token(sites, "deploy", "admin")
    assert other.token != created.token  # names need not be unique; tokens always are


def test_list_never_shows_a_token(sites):
    first = tokens.create_token(sites, "reader", "read")
    second = tokens.create_token(sites, "moderator", "moderate", site="blog")
    listed = tokens.list_tokens(sites)
    assert [(t.id, t.name, t.scope, t.site) for t in listed] == [
        (first.record.id, "reader", "read", None),
        (second.record.id, "moderator", "moderate", "blog")]
    shown = repr(listed)
    assert first.token not in shown and second.token not in shown
    assert first.record.token_hash not in shown


def test_authenticate_checks_the_token_and_records_its_use(sites):
    created = tokens.create_token(sites, "deploy", "admin")
    assert created.record.last_used_at is None
    record = tokens.authenticate(sites, created.token, "admin", "blog")
    assert record.id == created.record.id and record.last_used_at is not None
    listed = tokens.list_tokens(sites)[0]
    assert listed.last_used_at is not None


def test_last_used_is_written_at_most_once_a_minute(sites):
    created = tokens.create_token(sites, "deploy", "read")
    start = dt.datetime(2026, 11, 25, 12, 0, 0)
    tokens.authenticate(sites, created.token, "read", now=start)
    tokens.authenticate(sites, created.token, "read", now=start + dt.timedelta(seconds=30))
    assert tokens.list_tokens(sites)[0].last_used_at == start
    later = start + dt.timedelta(minutes=2)
    tokens.authenticate(sites, created.token, "read", now=later)
    assert tokens.list_tokens(sites)[0].last_used_at == later


@pytest.mark.parametrize("presented", [
    None, "", "ovt_" + "x" * 43, "not-a-token", "ovt_" + "a" * 500, "Bearer ovt_abc",
])
def test_unknown_or_malformed_tokens_are_unauthorized(sites, presented):
    tokens.create_token(sites, "deploy", "admin")
    with pytest.raises(Unauthorized) as refused:
        tokens.authenticate(sites, presented, "read")
    assert refused.value.status == 401 and refused.value.code == "unauthorized"


def test_a_revoked_token_stops_working_at_once(sites):
    created = tokens.create_token(sites, "deploy", "admin")
    tokens.authenticate(sites, created.token, "admin")
    record, changed = tokens.revoke_token(sites, created.record.id)
    assert changed and record.revoked_at is not None and not record.active
    with pytest.raises(Unauthorized) as refused:
        tokens.authenticate(sites, created.token, "read")
    # The same answer as an unknown token: a caller learns nothing from it.
    assert refused.value.message == "The admin token is unknown or revoked."
    again, changed = tokens.revoke_token(sites, created.record.id)
    assert not changed and again.revoked_at == record.revoked_at


def test_revoking_an_unknown_token(sites):
    with pytest.raises(UnknownToken):
        tokens.revoke_token(sites, 999)


@pytest.mark.parametrize(("granted", "allowed"), [
    ("read", {"read"}),
    ("moderate", {"read", "moderate"}),
    ("admin", {"read", "moderate", "admin"}),
])
def test_scopes_are_ordered(sites, granted, allowed):
    created = tokens.create_token(sites, granted, granted)
    for needed in tokens.SCOPES:
        if needed in allowed:
            assert tokens.authenticate(sites, created.token, needed).scope == granted
        else:
            with pytest.raises(Forbidden) as refused:
                tokens.authenticate(sites, created.token, needed)
            assert refused.value.status == 403 and refused.value.code == "forbidden"
            assert needed in refused.value.message


def test_a_site_bound_token_opens_only_its_site(sites):
    created = tokens.create_token(sites, "blog-bot", "admin", site="blog")
    assert tokens.authenticate(sites, created.token, "admin", "blog").site == "blog"
    assert tokens.authenticate(sites, created.token, "read", None).site == "blog"
    with pytest.raises(Forbidden) as refused:
        tokens.authenticate(sites, created.token, "read", "other")
    assert "bound to site 'blog'" in refused.value.message
    unbound = tokens.create_token(sites, "all", "read")
    assert tokens.authenticate(sites, unbound.token, "read", "other").site is None


@pytest.mark.parametrize(("kwargs", "error", "field"), [
    ({"name": ""}, InvalidInput, "name"),
    ({"name": "   "}, InvalidInput, "name"),
    ({"name": "x" * 101}, InvalidInput, "name"),
    ({"name": "bad\nname"}, InvalidInput, "name"),
    ({"scope": "root"}, InvalidInput, "scope"),
    ({"scope": "Admin"}, InvalidInput, "scope"),
    ({"site": "nosuchsite"}, UnknownSite, None),
    ({"site": "Bad Site"}, InvalidInput, "site"),
])
def test_bad_token_input_is_refused_and_nothing_is_stored(sites, kwargs, error, field):
    arguments = {"name": "deploy", "scope": "read", "site": None, **kwargs}
    with pytest.raises(error) as refused:
        tokens.create_token(sites, arguments["name"], arguments["scope"], arguments["site"])
    if field:
        assert refused.value.details == {"field": field}
    assert tokens.list_tokens(sites) == []


def test_an_unknown_scope_asked_by_code_is_a_bug_not_a_refusal(sites):
    created = tokens.create_token(sites, "deploy", "admin")
    with pytest.raises(ValueError):
        tokens.authenticate(sites, created.token, "superuser")
