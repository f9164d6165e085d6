"""Feed polling against real RSS 2.0 and Atom feeds served on loopback, on real Redis and SQL:
new entries are published once, unchanged ones never again, changed ones again, and a broken
feed (malformed, 404, slow, huge, redirect loop) is logged and changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from appliance import events
from appliance.errors import InvalidInput, UnknownSite
from appliance.jobs.feeds import FeedPoller, poll_feeds, validate_feed_url
from appliance.services.sites import add_site
from appliance.storage import publication_store
from appliance.storage.models import Page, Site
from appliance.storage.site_store import get_site, update_site
from appliance.workers.listener import build_listener

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
<title>A blog</title><link>https://blog.example/</link><description>Posts</description>
<item><title>Second post</title><link>https://blog.example/2026/second/</link>
<pubDate>Wed, 25 Nov 2026 09:00:00 +0000</pubDate></item>
<item><title>First &amp; best post</title><link>https://blog.example/2026/first/?utm=rss</link>
<pubDate>Tue, 24 Nov 2026 10:30:00 +0100</pubDate></item>
<item><title>Elsewhere</title><link>https://other.example/not-ours/</link>
<pubDate>Tue, 24 Nov 2026 08:00:00 +0000</pubDate></item>
<item><title>No link at all</title></item>
</channel></rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<title>A blog</title><id>urn:blog</id><updated>2026-11-25T09:00:00Z</updated>
<entry><title type="html">&lt;b&gt;Atom&lt;/b&gt; entry</title><id>urn:1</id>
<link href="https://blog.example/atom/one/"/>
<published>2026-11-20T08:00:00+02:00</published><updated>2026-11-21T08:00:00Z</updated></entry>
<entry><title>Relative link</title><id>urn:2</id><link href="/atom/two"/>
<updated>2026-11-22T12:00:00Z</updated></entry>
</feed>
"""


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/xml"
    delay_s: float = 0.0
    location: str | None = None
    etag: bool = True  # answer If-None-Match with 304
    length: bool = True  # send Content-Length (else the body ends when the connection does)


@dataclass
class FeedServer:
    """A tiny real HTTP server on loopback: path -> Route, with a log of the requests."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: str | bytes = b"", **kwargs) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = Route(body=data, **kwargs)
        return self.url(path)


def _handler(server: FeedServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            server.requests.append((self.path, dict(self.headers)))
            route = server.routes.get(self.path)
            if route is None:
                route = Route(b"not found", status=404, content_type="text/plain")
            if route.delay_s:
                time.sleep(route.delay_s)
            etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
            if route.etag and route.status == 200 and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(route.status)
            if route.location:
                self.send_header("Location", route.location)
            self.send_header("Content-Type", route.content_type)
            if route.length:
                self.send_header("Content-Length", str(len(route.body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            if route.etag:
                self.send_header("ETag", etag)
            self.end_headers()
            try:
                self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


def set_feed(database, site: str, url: str) -> None:
    import dataclasses

    update_site(database, dataclasses.replace(get_site(database, site), feed_url=url))


@pytest.fixture
def blog(database):
    add_site(database, "blog", ["https://blog.example"])
    return database


def stream_length(redis_client) -> int:
    return redis_client.xlen(events.PUBLISH_STREAM) if redis_client.exists(
        events.PUBLISH_STREAM) else 0


def pages(database, site: str = "blog") -> dict[str, tuple[str, dt.datetime | None]]:
    with database.connection_context():
        query = Page.select(Page.path, Page.title, Page.published_at).join(Site).where(
            Site.name == site)
        return {page.path: (page.title, page.published_at) for page in query}


def test_an_rss_feed_publishes_its_posts_once(blog, redis_client, feed_server):
    set_feed(blog, "blog", feed_server.serve("/rss.xml", RSS))
    [report] = poll_feeds(redis_client, blog)
    assert (report.outcome, report.published, report.unchanged, report.skipped) == (
        "updated", 2, 0, 2)  # one entry links to another host, one has no link
    assert build_listener(redis_client, blog).run_once() == 2
    assert pages(blog) == {
        "/2026/first": ("First & best post", dt.datetime(2026, 11, 24, 9, 30)),
        "/2026/second": ("Second post", dt.datetime(2026, 11, 25, 9, 0)),
    }
    # Oldest first, so announcements keep the feed's order.
    notified = [entry[1]["body"] for entry in redis_client.xrange(events.NOTIFICATION_STREAM)]
    assert ["first" in body for body in notified] == [True, False]
    _path, headers = feed_server.requests[0]
    assert headers["User-Agent"].startswith("Ovation/")

    # Unchanged: a conditional GET answered 304, and nothing is enqueued.
    [again] = poll_feeds(redis_client, blog)
    assert again.outcome == "not_modified"
    assert "If-None-Match" in feed_server.requests[-1][1]
    assert stream_length(redis_client) == 2


def test_entries_are_published_by_date_whatever_the_feed_order(blog, redis_client,
                                                               feed_server):
    # Listed oldest first, with an undated entry in the middle: announced by date, and the
    # undated one (dated by the poll) last. Found trying it by hand: a feed listed oldest
    # first was announced newest first.
    items = "".join(
        f"<item><title>{title}</title><link>https://blog.example/{slug}/</link>{date}</item>"
        for title, slug, date in [
            ("Oldest", "oldest", "<pubDate>Mon, 23 Nov 2026 09:00:00 +0000</pubDate>"),
            ("Undated", "undated", ""),
            ("Middle", "middle", "<pubDate>Tue, 24 Nov 2026 09:00:00 +0000</pubDate>"),
            ("Newest", "newest", "<pubDate>Wed, 25 Nov 2026 09:00:00 +0000</pubDate>"),
        ])
    set_feed(blog, "blog", feed_server.serve("/ascending.xml", (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>A blog</title>'
        f"<link>https://blog.example/</link><description>d</description>{items}"
        "</channel></rss>")))
    [report] = poll_feeds(redis_client, blog)
    assert report.published == 4
    queued = [json.loads(fields["body"])["title"]
              for _id, fields in redis_client.xrange(events.PUBLISH_STREAM)]
    assert queued == ["Oldest", "Middle", "Newest", "Undated"]


def test_an_unchanged_feed_without_validators_enqueues_nothing(blog, redis_client,
                                                               feed_server):
    set_feed(blog, "blog", feed_server.serve("/rss.xml", RSS, etag=False))
    poll_feeds(redis_client, blog)
    [again] = poll_feeds(redis_client, blog)
    assert (again.outcome, again.published, again.unchanged) == ("updated", 0, 2)
    assert stream_length(redis_client) == 2


def test_a_changed_entry_is_published_again(blog, redis_client, feed_server):
    url = feed_server.serve("/rss.xml", RSS)
    set_feed(blog, "blog", url)
    listener = build_listener(redis_client, blog)
    poll_feeds(redis_client, blog)
    listener.run_once()
    feed_server.serve("/rss.xml", RSS.replace("Second post", "Second post, corrected"))
    [report] = poll_feeds(redis_client, blog)
    assert (report.published, report.unchanged) == (1, 1)
    assert listener.run_once() == 1
    assert pages(blog)["/2026/second"][0] == "Second post, corrected"


def test_an_atom_feed_with_relative_links_and_html_titles(database, redis_client, feed_server):
    add_site(database, "notes", [])  # no origins: entries of any host are taken
    set_feed(database, "notes", feed_server.serve("/feeds/atom.xml", ATOM,
                                                  content_type="application/atom+xml"))
    [report] = poll_feeds(redis_client, database, "notes")
    assert (report.outcome, report.published, report.skipped) == ("updated", 2, 0)
    build_listener(redis_client, database).run_once()
    assert pages(database, "notes") == {
        "/atom/one": ("Atom entry", dt.datetime(2026, 11, 20, 6, 0)),
        "/atom/two": ("Relative link", dt.datetime(2026, 11, 22, 12, 0)),
    }


def test_losing_the_seen_entries_republishes_but_stores_nothing_twice(blog, redis_client,
                                                                      feed_server):
    set_feed(blog, "blog", feed_server.serve("/rss.xml", RSS, etag=False))
    listener = build_listener(redis_client, blog)
    poll_feeds(redis_client, blog)
    listener.run_once()
    redis_client.delete(publication_store.feed_seen_key("blog"))
    [report] = poll_feeds(redis_client, blog)
    assert report.published == 2  # enqueued again, with the same stable event ids...
    listener.run_once()
    assert len(pages(blog)) == 2  # ...which the listener has applied already
    assert redis_client.xlen(events.NOTIFICATION_STREAM) == 2


BROKEN = [
    pytest.param({"body": "<rss><channel><item><title>cut", "etag": False}, "malformed",
                 id="malformed XML"),
    pytest.param({"body": "<html><body>Hello</body></html>", "content_type": "text/html"},
                 "not an RSS or Atom feed", id="an HTML page"),
    pytest.param({"body": b"\x00\xff" * 10, "etag": False}, "", id="binary garbage"),
    pytest.param({"status": 404}, "HTTP 404", id="404"),
    pytest.param({"status": 500, "body": RSS}, "HTTP 500", id="500"),
    pytest.param({"body": RSS, "delay_s": 2.0}, "no answer within", id="timeout"),
    pytest.param({"body": RSS + " " * 6_000_000}, "larger than", id="over 5 MB"),
]


@pytest.mark.parametrize(("route", "message"), BROKEN)
def test_a_broken_feed_is_logged_and_changes_nothing(blog, redis_client, feed_server, caplog,
                                                     route, message):
    set_feed(blog, "blog", feed_server.serve("/feed", **route))
    with caplog.at_level(logging.WARNING, logger="ovation.feeds"):
        [report] = poll_feeds(redis_client, blog, timeout_s=0.5)
    assert report.outcome == "failed" and message in report.error
    assert any("nothing published" in record.message for record in caplog.records)
    assert stream_length(redis_client) == 0
    assert redis_client.exists(publication_store.feed_state_key("blog")) == 0
    assert pages(blog) == {}


def test_the_size_limit_holds_without_a_content_length(blog, redis_client, feed_server):
    set_feed(blog, "blog", feed_server.serve("/feed", RSS * 3, length=False))
    [report] = poll_feeds(redis_client, blog, max_bytes=len(RSS))
    assert report.outcome == "failed" and "larger than" in report.error
    [report] = poll_feeds(redis_client, blog, max_bytes=len(RSS) * 3)
    assert report.outcome == "failed" and "malformed" in report.error  # three documents in one


def test_redirects_are_followed_up_to_three(blog, redis_client, feed_server):
    feed_server.serve("/final", RSS)
    for hop in range(3):
        feed_server.serve(f"/hop{hop}", status=301,
                          location=f"/hop{hop + 1}" if hop < 2 else "/final")
    set_feed(blog, "blog", feed_server.url("/hop0"))
    [report] = poll_feeds(redis_client, blog)
    assert (report.outcome, report.published) == ("updated", 2)

    for hop in range(4):
        feed_server.serve(f"/loop{hop}", status=302, location=f"/loop{hop + 1}")
    set_feed(blog, "blog", feed_server.url("/loop0"))
    [report] = poll_feeds(redis_client, blog)
    assert report.outcome == "failed" and "more than 3 redirects" in report.error


def test_one_broken_feed_does_not_stop_the_others(blog, redis_client, feed_server):
    add_site(blog, "press", ["https://blog.example"])
    set_feed(blog, "blog", feed_server.url("/missing"))
    set_feed(blog, "press", feed_server.serve("/rss.xml", RSS))
    reports = {report.site: report for report in poll_feeds(redis_client, blog)}
    assert reports["blog"].outcome == "failed" and reports["press"].published == 2


def test_the_scheduled_tick_survives_anything(blog, redis_client, feed_server, tmp_path):
    set_feed(blog, "blog", feed_server.url("/missing"))
    poller = FeedPoller(redis_client, blog)
    poller.tick()  # a 404: logged
    broken = FeedPoller(redis_client.__class__.from_url(f"unix://{tmp_path}/no.sock"), blog)
    broken.tick()  # Redis unreachable: logged, not raised
    assert stream_length(redis_client) == 0


def test_sites_without_feeds_are_not_polled(blog, redis_client):
    assert poll_feeds(redis_client, blog) == []
    with pytest.raises(InvalidInput, match="has no feed"):
        poll_feeds(redis_client, blog, "blog")
    with pytest.raises(UnknownSite):
        poll_feeds(redis_client, blog, "nosuchsite")


@pytest.mark.parametrize("url", [
    "ftp://blog.example/feed", "blog.example/feed", "https://", "javascript:alert(1)",
    "https://blog.example/a b", "https://blog.example:99999/feed", "",
    "https://blog.example/" + "a" * 2048,
])
def test_feed_urls_must_be_http_or_https(url):
    with pytest.raises(InvalidInput):
        validate_feed_url(url)


def test_a_good_feed_url_is_kept_as_given():
    assert validate_feed_url(" https://blog.example/feed.xml?x=1 ") == (
        "https://blog.example/feed.xml?x=1")
