"""Feed polling: each site's RSS or Atom feed becomes publish events for its new or changed posts.

`poll_feeds` is the one-shot twin (`platformctl feeds poll`, tests); `FeedPoller.tick` is what the
flusher process's scheduler runs every `feed_poll_interval_s`. A poll never raises for a bad
feed: an unreachable, slow, huge or malformed feed is logged and changes nothing.

Re-polling an unchanged feed enqueues nothing: the fetch is a conditional GET (ETag and
Last-Modified kept in Redis), and each entry's event id is a hash of (site, path, date, title)
remembered per path, so only new or changed entries are published again.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import io
import logging
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import feedparser
import httpx
import peewee as pw
import redis

from appliance import __version__
from appliance.errors import InvalidInput, InvalidPath, OvationError, UnknownSite
from appliance.paths import normalise_path
from appliance.services import publishing
from appliance.storage import publication_store, site_store
from appliance.storage.site_store import SiteRecord

log = logging.getLogger("ovation.feeds")

FETCH_TIMEOUT_S = 10.0  # connect, and each read
FETCH_DEADLINE_S = 60.0  # the whole download, against a server that trickles
MAX_FEED_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 3
MAX_ENTRIES = 500
USER_AGENT = f"Ovation/{__version__} (feed poller)"
ACCEPT = ("application/rss+xml, application/atom+xml, application/xml;q=0.9, "
          "text/xml;q=0.9, */*;q=0.1")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


class FeedError(Exception):
    """The feed could not be fetched or read; the message says why, in one line."""


@dataclass
class FeedReport:
    """What one poll of one site's feed did."""

    site: str
    url: str
    outcome: str = "updated"  # updated | not_modified | failed
    published: int = 0  # entries enqueued as publish events (new or changed)
    unchanged: int = 0  # entries enqueued by an earlier poll, unchanged since
    skipped: int = 0  # entries without a usable link, or linking to another host
    error: str = ""

    def describe(self) -> str:
        if self.outcome == "failed":
            return f"{self.site}: {self.url} failed: {self.error}"
        if self.outcome == "not_modified":
            return f"{self.site}: {self.url} not modified since the last poll"
        return (f"{self.site}: {self.published} published, {self.unchanged} unchanged, "
                f"{self.skipped} skipped")


def validate_feed_url(url: str) -> str:
    """An absolute http(s) URL of at most 2048 characters, or InvalidInput."""
    text = url.strip() if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidInput(f"Feed URL {url!r} is not a URL.", details={"field": "feed"}) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Feed URL {url!r} must be an http:// or https:// URL.",
                           details={"field": "feed"})
    if len(text) > 2048 or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise InvalidInput(f"Feed URL {url!r} is too long or contains spaces.",
                           details={"field": "feed"})
    return text


def fetch_feed(url: str, validators: dict[str, str], *, timeout_s: float = FETCH_TIMEOUT_S,
               max_bytes: int = MAX_FEED_BYTES) -> tuple[bytes, httpx.Headers, str] | None:
    """GET the feed, conditionally: None when not modified, else (body, headers, final URL)."""
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators.get("last_modified"):
        headers["If-Modified-Since"] = validators["last_modified"]
    deadline = time.monotonic() + max(FETCH_DEADLINE_S, timeout_s)
    try:
        with httpx.Client(follow_redirects=True, max_redirects=MAX_REDIRECTS,
                          timeout=timeout_s) as http, \
                http.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return None
            if response.status_code != 200:
                raise FeedError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FeedError(f"the feed is larger than {max_bytes} bytes")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FeedError(f"the feed is larger than {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FeedError("the download took too long")
            return bytes(body), response.headers, str(response.url)
    except httpx.TooManyRedirects:
        raise FeedError(f"more than {MAX_REDIRECTS} redirects") from None
    except httpx.TimeoutException:
        raise FeedError(f"no answer within {timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise FeedError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                        ) from None


def parse_feed(body: bytes, headers: httpx.Headers, url: str) -> feedparser.FeedParserDict:
    """Parse RSS or Atom with feedparser; FeedError if the document is not a usable feed."""
    parsed = feedparser.parse(io.BytesIO(body), response_headers={
        "content-type": headers.get("Content-Type", "application/xml"),
        "content-location": url,  # relative links resolve against the feed's own URL
    })
    problem = parsed.get("bozo_exception")
    harmless = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
    if parsed.get("bozo") and not isinstance(problem, harmless):
        raise FeedError(f"malformed feed: {problem}".strip().splitlines()[0][:300])
    if not parsed.get("version"):
        raise FeedError("not an RSS or Atom feed")
    return parsed


def _plain_title(entry: feedparser.FeedParserDict) -> str:
    title = entry.get("title") or ""
    if "html" in (entry.get("title_detail") or {}).get("type", ""):
        title = html.unescape(_TAG.sub("", title))
    title = _SPACE.sub(" ", "".join(ch for ch in title if ch.isprintable() or ch.isspace()))
    title = title.strip()
    if len(title) > publishing.MAX_TITLE_LENGTH:
        title = title[: publishing.MAX_TITLE_LENGTH - 1].rstrip() + "…"
    return title


def _utc(struct: time.struct_time | None) -> dt.datetime | None:
    """feedparser's parsed dates are UTC struct_times."""
    if not struct:
        return None
    try:
        return dt.datetime.fromtimestamp(calendar.timegm(struct), dt.UTC).replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return None


def oldest_first(entries: list) -> list:
    """Entries in the order to publish them, so announcements follow the posts' dates.

    Most feeds list the newest first, but not all (some generators list oldest first, some
    by title): the dates decide. An entry without a date is published as of the poll, so it
    goes last; ties keep the reverse of the feed's order (newest-first feeds stay in order)."""
    def when(entry: feedparser.FeedParserDict) -> dt.datetime:
        published = (_utc(dict.get(entry, "published_parsed"))
                     or _utc(dict.get(entry, "updated_parsed")))
        return published or dt.datetime.max
    return sorted(reversed(entries), key=when)


def poll_site(client: redis.Redis, site: SiteRecord, *, timeout_s: float = FETCH_TIMEOUT_S,
              max_bytes: int = MAX_FEED_BYTES, max_path_length: int = 1024) -> FeedReport:
    """Poll one site's feed and enqueue its new or changed entries. Never raises FeedError."""
    assert site.feed_url
    url = site.feed_url
    report = FeedReport(site=site.name, url=url)
    try:
        fetched = fetch_feed(url, publication_store.feed_validators(client, site.name, url),
                             timeout_s=timeout_s, max_bytes=max_bytes)
        if fetched is None:
            report.outcome = "not_modified"
            return report
        body, headers, final_url = fetched
        parsed = parse_feed(body, headers, final_url)
    except FeedError as exc:
        report.outcome, report.error = "failed", str(exc)
        log.warning("feed of %s (%s): %s; nothing published", site.name, url, exc)
        return report

    hosts = {urlsplit(origin).hostname for origin in site.origins}
    seen = publication_store.seen_entries(client, site.name)
    for entry in oldest_first(parsed.entries[:MAX_ENTRIES]):
        link = entry.get("link") or ""
        try:
            host = urlsplit(link).hostname
            if not link or (hosts and host not in hosts):
                raise InvalidPath("no link to one of the site's origins")
            path = normalise_path(link, max_path_length)
        except (InvalidPath, ValueError):
            report.skipped += 1
            continue
        # dict.get: FeedParserDict.get maps a missing `updated_parsed` to `published_parsed`.
        published_struct = dict.get(entry, "published_parsed")
        updated_struct = dict.get(entry, "updated_parsed")
        published = _utc(published_struct) or _utc(updated_struct)
        changed = _utc(updated_struct) or published
        title = _plain_title(entry) or path
        event_id = publishing.feed_event_id(site.name, path,
                                            changed.isoformat() if changed else "", title)
        if seen.get(path) == event_id:
            report.unchanged += 1
            continue
        publication = publishing.prepare(site.name, path, title, published, source="feed",
                                         max_path_length=max_path_length, event_id=event_id)
        publishing.enqueue(client, publication)
        publication_store.mark_seen(client, site.name, path, event_id)
        seen[path] = event_id
        report.published += 1
    # Validators are kept only once every entry is enqueued: a poll cut short fetches again.
    publication_store.save_feed_validators(client, site.name, url, headers.get("ETag"),
                                           headers.get("Last-Modified"))
    log.info("feed of %s: %d published, %d unchanged, %d skipped", site.name,
             report.published, report.unchanged, report.skipped)
    return report


def poll_feeds(client: redis.Redis, database: pw.Database, site: str | None = None, *,
               timeout_s: float = FETCH_TIMEOUT_S, max_bytes: int = MAX_FEED_BYTES,
               max_path_length: int = 1024,
               stop: threading.Event | None = None) -> list[FeedReport]:
    """Poll every site that has a feed (or just `site`); one report per feed polled."""
    if site is not None:
        record = site_store.get_site(database, site)
        if record is None:
            raise UnknownSite(f"No site is named {site!r} (see `platformctl site list`).")
        if not record.feed_url:
            raise InvalidInput(f"Site {site!r} has no feed: set one with `platformctl site set "
                               f"{site} --feed URL`.", details={"field": "site"})
        records = [record]
    else:
        records = [record for record, _pages in site_store.list_sites(database)
                   if record.feed_url]
    reports = []
    for record in records:
        if stop is not None and stop.is_set():
            break
        reports.append(poll_site(client, record, timeout_s=timeout_s, max_bytes=max_bytes,
                                 max_path_length=max_path_length))
    return reports


class FeedPoller:
    """The flusher's periodic job: one poll of every feed per tick; failures are logged."""

    def __init__(self, client: redis.Redis, database: pw.Database,
                 max_path_length: int = 1024) -> None:
        self.client = client
        self.database = database
        self.max_path_length = max_path_length
        self.stop_event = threading.Event()

    def tick(self) -> None:
        try:
            poll_feeds(self.client, self.database, max_path_length=self.max_path_length,
                       stop=self.stop_event)
        except (OvationError, pw.PeeweeException, redis.exceptions.RedisError, OSError) as exc:
            log.warning("feed poll failed (%s: %s); trying again at the next interval",
                        type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc) else "")
            try:
                self.database.close()  # a fresh connection next time
            except Exception:
                pass
