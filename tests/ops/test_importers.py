"""Importers on realistic exports (threads, replies, deleted comments, unicode, odd dates) and
on malformed files, which fail with one clear line and import nothing."""

from __future__ import annotations

import json

import pytest

from appliance.services.sites import add_site
from appliance.storage.models import Comment, Page, Site
from tests.ops.conftest import SAMPLES


@pytest.fixture
def blog(database):
    add_site(database, "blog", ["https://blog.example"], "My blog")
    return database


def comments_by_author(database) -> dict[str, Comment]:
    with database.connection_context():
        return {row.author_name: row for row in Comment.select()}


def comment_count(database) -> int:
    with database.connection_context():
        return Comment.select().count()


def test_disqus_import_keeps_threads_statuses_and_unicode(platformctl, blog):
    result = platformctl("import", str(SAMPLES / "disqus.xml"), "--site", "blog")
    assert result.exit_code == 0, result.output
    assert "Imported 5 comment(s) from disqus" in result.output
    rows = comments_by_author(blog)
    ann, bob = rows["Ann"], rows["Bob"]  # "Ann <admin>": the tag-like part is dropped
    assert bob.parent_id == ann.id and bob.depth == 1  # the reply came first in the file
    assert "<strong>Great</strong>" in ann.body_html and "alert" not in ann.body_html
    assert 'href="https://example.org/x"' in bob.body_html
    assert rows["Gone"].status == "deleted" and rows["Gone"].body_html == ""
    assert rows["Spammer"].status == "spam"
    assert "美味しそう 🍰" in rows["Zoë"].body_html
    # 2019-03-01T09:30:00+02:00 is 07:30 UTC; dates are stored as naive UTC
    assert rows["Gone"].created_at.hour == 7
    with blog.connection_context():
        paths = {page.path: page.title for page in Page.select()}
    assert paths["/2019/hello-world"] == "Hello, world"
    assert paths["/2020/caf%C3%A9-cr%C3%A8me"] == "Café crème ☕"


def test_importing_twice_adds_nothing(platformctl, blog):
    assert platformctl("import", str(SAMPLES / "disqus.xml"), "--site", "blog").exit_code == 0
    again = platformctl("import", str(SAMPLES / "disqus.xml"), "--site", "blog")
    assert again.exit_code == 0 and "Imported 0 comment(s)" in again.output
    assert "5 already present" in again.output
    assert comment_count(blog) == 5


def test_wordpress_import_skips_pingbacks_and_handles_zero_dates(platformctl, blog):
    result = platformctl("import", str(SAMPLES / "wordpress.xml"), "--site", "blog")
    assert result.exit_code == 0, result.output
    assert "skipped: comment 33 of item 17: a pingback" in result.output
    rows = comments_by_author(blog)
    assert set(rows) == {"Ann", "Jürgen", "Trash"}
    assert rows["Jürgen"].parent_id == rows["Ann"].id
    assert rows["Jürgen"].status == "pending"
    assert rows["Jürgen"].author_website == ""  # javascript: is not a website
    assert "onerror" not in rows["Jürgen"].body_html and "<img" not in rows["Jürgen"].body_html
    assert rows["Jürgen"].created_at.isoformat() == "2021-04-03T08:00:00"  # local date used
    assert rows["Ann"].created_at.isoformat() == "2021-04-02T09:05:00"
    assert rows["Ann"].author_website == "https://ann.example"
    assert "<em>paragraphs</em>" in rows["Ann"].body_html
    assert rows["Trash"].status == "deleted"


def test_isso_import_keeps_nesting_votes_and_edits(platformctl, blog, isso_database):
    result = platformctl("import", str(isso_database), "--site", "blog")
    assert result.exit_code == 0, result.output
    assert "from isso" in result.output
    with blog.connection_context():
        rows = {row.body_markdown: row for row in Comment.select()}
    first = rows["Hello **Markdown** and a [link](https://example.org)."]
    assert "<strong>Markdown</strong>" in first.body_html
    assert (first.votes_up, first.votes_down) == (3, 1)
    reply = rows["A reply, edited later."]
    assert reply.parent_id == first.id and reply.edited_at is not None
    assert rows["A reply to the reply."].depth == 2
    assert rows["Wartet auf Freigabe: äöü ß 🎉"].status == "pending"
    assert rows[""].status == "deleted"


def test_dry_run_writes_nothing(platformctl, blog):
    result = platformctl("import", "--dry-run", str(SAMPLES / "disqus.xml"), "--site", "blog")
    assert result.exit_code == 0 and "Would import 5 comment(s)" in result.output
    assert comment_count(blog) == 0
    with blog.connection_context():
        assert Page.select().count() == 0


def test_export_then_import_round_trip(platformctl, blog, tmp_path, make_settings, sqlite_url,
                                       monkeypatch):
    assert platformctl("import", str(SAMPLES / "disqus.xml"), "--site", "blog").exit_code == 0
    export = tmp_path / "export.json"
    assert platformctl("export", "--to", str(export)).exit_code == 0
    document = json.loads(export.read_text())
    assert document["format"] == "ovation-export" and export.stat().st_mode & 0o077 == 0
    # into an empty instance: the site is created and every comment comes back with its id
    other = make_settings(f"sqlite:///{tmp_path / 'other.db'}")
    monkeypatch.setenv("OVATION_DATABASE_URL", other.database_url)
    assert platformctl("migrate").exit_code == 0
    result = platformctl("import", str(export))
    assert result.exit_code == 0, result.output
    assert "sites created: blog" in result.output and "Imported 5 comment(s)" in result.output
    from appliance.storage.database import open_database

    copy = open_database(other.database_url)
    with copy.connection_context():
        assert Site.get(Site.name == "blog").title == "My blog"
        assert Comment.select().count() == 5


MALFORMED = {
    "truncated.xml": ("<disqus xmlns='http://disqus.com'><thread", "not well-formed XML"),
    "bomb.xml": ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                 '<!ENTITY lol2 "&lol;&lol;">]><disqus>&lol2;</disqus>', "entities or DTDs"),
    "orphan.xml": ("<disqus xmlns='http://disqus.com' "
                   "xmlns:dsq='http://disqus.com/disqus-internals'><post dsq:id='1'>"
                   "<message>x</message><createdAt>2020-01-01T00:00:00Z</createdAt>"
                   "<thread dsq:id='404'/></post></disqus>", "thread '404' is not in the file"),
    "baddate.xml": ("<disqus xmlns='http://disqus.com' "
                    "xmlns:dsq='http://disqus.com/disqus-internals'><thread dsq:id='1'>"
                    "<link>https://b.example/p</link></thread><post dsq:id='2'>"
                    "<message>ok</message><createdAt>yesterday</createdAt>"
                    "<thread dsq:id='1'/></post></disqus>", "cannot read the date 'yesterday'"),
    "wrong.json": ('{"hello": "world"}', "not an Ovation export"),
    "broken.json": ('{"format": "ovation-export", "version": 1, "sites": [', "not valid JSON"),
    "status.json": (json.dumps({"format": "ovation-export", "version": 1, "sites": [{
        "name": "blog", "pages": [{"path": "/a", "comments": [
            {"id": "good1", "status": "approved", "created_at": "2020-01-01T00:00:00Z",
             "body_markdown": "fine"},
            {"id": "bad2", "status": "maybe", "created_at": "2020-01-01T00:00:00Z"}]}]}]}),
        "unknown status 'maybe'"),
    "plain.txt": ("just some text", "cannot tell the format"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_files_fail_clearly_and_import_nothing(platformctl, blog, tmp_path, name):
    content, message = MALFORMED[name]
    path = tmp_path / name
    path.write_text(content)
    result = platformctl("import", str(path), "--site", "blog")
    assert result.exit_code == 1
    assert message in result.output, result.output
    assert result.output.count("\n") <= 2 and "Traceback" not in result.output
    assert comment_count(blog) == 0


def test_isso_file_that_is_not_isso_fails(platformctl, blog, tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    result = platformctl("import", str(path), "--site", "blog")
    assert result.exit_code == 1 and "not Isso's" in result.output


def test_import_into_unknown_site_fails(platformctl, database):
    result = platformctl("import", str(SAMPLES / "disqus.xml"), "--site", "nosuch")
    assert result.exit_code == 1 and "No site is named 'nosuch'" in result.output
    assert comment_count(database) == 0


def test_foreign_formats_need_a_site(platformctl, database):
    result = platformctl("import", str(SAMPLES / "wordpress.xml"))
    assert result.exit_code == 1 and "needs --site" in result.output


# Damaged copies of the realistic samples: one bad spot in an otherwise good file must still
# import nothing at all, with one line that names the spot.
def _sample(name: str, old: str, new: str) -> str:
    text = (SAMPLES / name).read_text()
    assert old in text, old
    return text.replace(old, new, 1)


DAMAGED_SAMPLES = {
    "wordpress-truncated": lambda: (SAMPLES / "wordpress.xml").read_text()[:1500],
    "wordpress-approval": lambda: _sample(
        "wordpress.xml", "<wp:comment_approved><![CDATA[0]]>",
        "<wp:comment_approved><![CDATA[maybe]]>"),
    "wordpress-no-id": lambda: _sample("wordpress.xml", "<wp:comment_id>34</wp:comment_id>",
                                       "<wp:comment_id></wp:comment_id>"),
    "wordpress-bad-date": lambda: _sample("wordpress.xml", "2021-04-05 06:00:00",
                                          "2021-13-45 06:00:00"),
    "wordpress-not-wxr": lambda: "<?xml version='1.0'?><feed><entry/></feed>",
    "disqus-date-out-of-range": lambda: _sample("disqus.xml", "2019-03-01T09:00:00Z",
                                                "0001-01-01T00:00:00+01:00"),
    "disqus-duplicate-post": lambda: _sample("disqus.xml", '<post dsq:id="5004">',
                                             '<post dsq:id="5001">'),
}
DAMAGED_MESSAGES = {
    "wordpress-truncated": "not well-formed XML",
    "wordpress-approval": "comment 32 of item 17: unknown approval state 'maybe'",
    "wordpress-no-id": "<wp:comment_id> is missing",
    "wordpress-bad-date": "cannot read the date '2021-13-45 06:00:00'",
    "wordpress-not-wxr": "cannot tell the format",
    "disqus-date-out-of-range": "post 5001: the date '0001-01-01T00:00:00+01:00' is out of range",
    "disqus-duplicate-post": "comment 5001 appears more than once in the file",
}


@pytest.mark.parametrize("name", sorted(DAMAGED_SAMPLES))
def test_damaged_samples_fail_clearly_and_import_nothing(platformctl, blog, tmp_path, name):
    path = tmp_path / f"{name}.xml"
    path.write_text(DAMAGED_SAMPLES[name]())
    result = platformctl("import", str(path), "--site", "blog")
    assert result.exit_code == 1, result.output
    assert DAMAGED_MESSAGES[name] in result.output, result.output
    assert "Traceback" not in result.output and result.output.count("\n") <= 2
    assert comment_count(blog) == 0


ISSO_DAMAGE = {
    "unknown mode": ("UPDATE comments SET mode = 9 WHERE id = 4", "comment 4: unknown mode 9"),
    "missing thread": ("DELETE FROM threads WHERE id = 2", "its thread 2 is not in the database"),
    "timestamp overflow": ("UPDATE comments SET created = 1e20 WHERE id = 3",
                           "comment 3: the timestamp 1e+20 is not a usable date"),
    "missing date": ("UPDATE comments SET created = '' WHERE id = 2", "comment 2: the date is "
                     "missing"),
    "blob text": ("UPDATE comments SET text = x'c3a4' WHERE id = 1",
                  "comment 1: the text column holds bytes, not text"),
    "old schema": ("ALTER TABLE threads RENAME COLUMN title TO heading", "no such column: title"),
}


@pytest.mark.parametrize("damage", sorted(ISSO_DAMAGE))
def test_damaged_isso_databases_fail_clearly_and_import_nothing(platformctl, blog,
                                                                isso_database, damage):
    import sqlite3

    statement, message = ISSO_DAMAGE[damage]
    with sqlite3.connect(isso_database) as db:
        db.execute(statement)
    db.close()
    result = platformctl("import", str(isso_database), "--site", "blog")
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and result.output.count("\n") <= 2
    assert comment_count(blog) == 0


def test_truncated_isso_database_fails_clearly(platformctl, blog, isso_database, tmp_path):
    cut = tmp_path / "cut.db"
    cut.write_bytes(isso_database.read_bytes()[:3000])
    result = platformctl("import", str(cut), "--site", "blog")
    assert result.exit_code == 1 and "cannot be read as an Isso database" in result.output
    assert comment_count(blog) == 0


def test_a_gzipped_export_is_named_as_such(platformctl, blog, tmp_path):
    import gzip

    packed = tmp_path / "disqus.xml.gz"
    packed.write_bytes(gzip.compress((SAMPLES / "disqus.xml").read_bytes()))
    result = platformctl("import", str(packed), "--site", "blog")
    assert result.exit_code == 1 and "is gzip-compressed: unpack it first" in result.output
    assert comment_count(blog) == 0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("author_name", {"first": "Ann"}, "'author_name' must be a string, not dict"),
    ("body_markdown", ["text"], "'body_markdown' must be a string, not list"),
    ("votes_up", True, "'votes_up' must be a non-negative integer"),
    ("votes_down", -2, "'votes_down' must be a non-negative integer"),
    ("created_at", True, "True is not a date"),
    ("created_at", "9999-12-31T23:59:59-14:00", "is out of range"),
])
def test_ovation_json_with_wrong_field_types_imports_nothing(platformctl, blog, tmp_path,
                                                             field, value, message):
    entry = {"id": "c1", "status": "approved", "created_at": "2020-01-01T00:00:00Z",
             "author_name": "Ann", "body_markdown": "fine", field: value}
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"format": "ovation-export", "version": 1, "sites": [
        {"name": "blog", "pages": [{"path": "/a", "counters": {"like": 2}, "comments": [
            {"id": "c0", "status": "approved", "created_at": "2020-01-01T00:00:00Z"},
            entry]}]}]}))
    result = platformctl("import", str(path))
    assert result.exit_code == 1, result.output
    assert message in result.output, result.output
    assert comment_count(blog) == 0


def test_ovation_json_duplicate_ids_and_boolean_counters_are_refused(platformctl, blog,
                                                                     tmp_path):
    comment = {"id": "same", "status": "approved", "created_at": "2020-01-01T00:00:00Z"}
    duplicate = tmp_path / "duplicate.json"
    duplicate.write_text(json.dumps({"format": "ovation-export", "version": 1, "sites": [
        {"name": "blog", "pages": [{"path": "/a", "comments": [comment]},
                                   {"path": "/b", "comments": [comment]}]}]}))
    result = platformctl("import", str(duplicate))
    assert result.exit_code == 1 and "comment same appears more than once" in result.output
    boolean = tmp_path / "boolean.json"
    boolean.write_text(json.dumps({"format": "ovation-export", "version": 1, "sites": [
        {"name": "blog", "pages": [{"path": "/a", "counters": {"like": True}}]}]}))
    result = platformctl("import", str(boolean))
    assert result.exit_code == 1 and "counters must be non-negative integers" in result.output
    assert comment_count(blog) == 0
