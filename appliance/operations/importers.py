"""Parsers for comment exports: Ovation's own JSON, Disqus XML, WordPress WXR, Isso SQLite.

Each parser reads the whole file into an `ImportBatch` before anything is written, so a
malformed file fails with one clear message (InvalidImport) and imports nothing. XML is parsed
with defusedxml (no entity expansion, no external entities: an export is untrusted input).
Bodies that arrive as HTML (Disqus, WordPress) become Markdown, which the importer renders
and sanitises exactly as it does a new comment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import InvalidImport, InvalidPath
from appliance.paths import normalise_path

FORMATS = ("json", "disqus", "wordpress", "isso")
EXPORT_FORMAT = "ovation-export"
STATUSES = ("pending", "approved", "rejected", "spam", "deleted")


@dataclass
class ImportedComment:
    source_id: str
    path: str
    parent_source_id: str | None
    author_name: str
    author_email: str
    author_website: str
    body_markdown: str
    status: str
    created_at: dt.datetime  # naive UTC, like every datetime in the database
    edited_at: dt.datetime | None = None
    votes_up: int = 0
    votes_down: int = 0
    id: str = ""  # an Ovation export keeps its ids; other sources get stable derived ones


@dataclass
class ImportedSite:
    name: str
    title: str = ""
    origins: list[str] = field(default_factory=list)


@dataclass
class ImportBatch:
    format: str
    site: str | None  # None: the sites named in the file (Ovation JSON)
    sites: list[ImportedSite] = field(default_factory=list)
    pages: dict[tuple[str, str], str] = field(default_factory=dict)  # (site, path) -> title
    counters: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    comments: list[tuple[str, ImportedComment]] = field(default_factory=list)  # (site, c)
    skipped: list[str] = field(default_factory=list)  # why each skipped item was skipped


def detect_format(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise InvalidImport(f"{path}: {exc.strerror}") from None
    if head.startswith(b"SQLite format 3\x00"):
        return "isso"
    if head.startswith(b"\x1f\x8b"):  # Disqus mails its export gzipped
        raise InvalidImport(f"{path} is gzip-compressed: unpack it first "
                            f"(gunzip {path.name}).")
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        return "json"
    if text.startswith("<"):
        if "<disqus" in text:
            return "disqus"
        if "wordpress.org/export" in text or "<rss" in text:
            return "wordpress"
    raise InvalidImport(f"{path}: cannot tell the format (Ovation JSON, Disqus XML, WordPress "
                        "WXR or an Isso database); say it with --format.")


def parse(path: Path, format_name: str, site: str | None) -> ImportBatch:
    if format_name not in FORMATS:
        raise InvalidImport(f"unknown format {format_name!r}; one of {', '.join(FORMATS)}")
    if format_name != "json" and not site:
        raise InvalidImport(f"importing {format_name} needs --site: the Ovation site the "
                            "comments belong to.")
    parser = {"json": parse_ovation_json, "disqus": parse_disqus, "wordpress": parse_wordpress,
              "isso": parse_isso}[format_name]
    try:
        batch = parser(path, site)
    except InvalidImport:
        raise
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InvalidImport(f"{path} is not a valid {format_name} export: {exc}") from None
    check_duplicates(batch)
    check_threads(batch)
    return batch


def derived_id(format_name: str, site: str, source_id: str) -> str:
    """A stable comment id from the source's own, so importing twice changes nothing."""
    return hashlib.sha256(f"{format_name}|{site}|{source_id}".encode()).hexdigest()[:32]


def check_duplicates(batch: ImportBatch) -> None:
    """One comment per id: a file that lists an id twice is malformed (which of the two is
    meant?), and refusing it here keeps the insert from failing halfway in SQL."""
    seen: set[tuple[str, str]] = set()
    for site, comment in batch.comments:
        # An Ovation export's ids are the database's own, unique across sites.
        key = ("", comment.id) if comment.id else (site, comment.source_id)
        if key in seen:
            raise InvalidImport(f"comment {comment.source_id} appears more than once in the "
                                "file")
        seen.add(key)


def check_threads(batch: ImportBatch) -> None:
    """Every reply's parent must be in the file; replies whose parent is missing go top level
    (the thread keeps the comment, not a dangling reference)."""
    known = {(site, comment.source_id) for site, comment in batch.comments}
    for site, comment in batch.comments:
        if comment.parent_source_id and (site, comment.parent_source_id) not in known:
            batch.skipped.append(f"comment {comment.source_id}: its parent "
                                 f"{comment.parent_source_id} is not in the file; imported "
                                 "as a top-level comment")
            comment.parent_source_id = None


# -- helpers -----------------------------------------------------------------------------------

def html_to_markdown(html: str) -> str:
    """Markdown for a comment body that was HTML; scripts and styles go with their content."""
    import nh3
    from markdownify import markdownify

    if "<" not in html and "&" not in html:
        return html.strip()
    cleaned = nh3.clean(html, tags={"p", "br", "a", "strong", "b", "em", "i", "code", "pre",
                                    "blockquote", "ul", "ol", "li", "del", "s"},
                        attributes={"a": {"href"}}, url_schemes={"http", "https", "mailto"},
                        link_rel=None)
    return markdownify(cleaned, heading_style="ATX").strip()


def parse_time(value: str | float | int | None, what: str) -> dt.datetime:
    """A timestamp in any of the shapes exports use, as naive UTC."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidImport(f"{what}: the date is missing")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidImport(f"{what}: {value!r} is not a date")
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(float(value), dt.UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):  # NaN, or beyond the years 1-9999
            raise InvalidImport(f"{what}: the timestamp {value!r} is not a usable date") \
                from None
    text = value.strip()
    if text.startswith("0000-00-00"):
        raise InvalidImport(f"{what}: the date {text!r} is not a date")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = dt.datetime.strptime(text, "%a, %d %b %Y %H:%M:%S %z")  # RFC 822
        except ValueError:
            raise InvalidImport(f"{what}: cannot read the date {text!r}") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
            raise InvalidImport(f"{what}: the date {text!r} is out of range") from None
    return parsed


def page_path(url: str, what: str) -> str:
    try:
        return normalise_path(url)
    except InvalidPath as exc:
        raise InvalidImport(f"{what}: {exc.message} ({url!r})") from None


def _text(element, default: str = "") -> str:
    return (element.text or default).strip() if element is not None else default


# -- Ovation JSON ------------------------------------------------------------------------------

def parse_ovation_json(path: Path, _site: str | None) -> ImportBatch:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidImport(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InvalidImport(f"{path} is JSON but not an Ovation export (no "
                            f"\"format\": \"{EXPORT_FORMAT}\").")
    if document.get("version") != 1:
        raise InvalidImport(f"{path}: export version {document.get('version')!r} is not "
                            "supported (this Ovation reads version 1).")
    batch = ImportBatch("json", None)
    for site_entry in _list(document, "sites", "the file"):
        name = _str(site_entry, "name", "a site")
        batch.sites.append(ImportedSite(name, str(site_entry.get("title", "")),
                                        [str(o) for o in site_entry.get("origins", [])]))
        for page in _list(site_entry, "pages", f"site {name}"):
            where = f"site {name}, page {page.get('path')!r}"
            page_key = (name, page_path(_str(page, "path", where), where))
            batch.pages[page_key] = str(page.get("title", ""))
            counters = page.get("counters") or {}
            if not isinstance(counters, dict) or not all(
                    _is_count(v) for v in counters.values()):
                raise InvalidImport(f"{where}: counters must be non-negative integers")
            if counters:
                batch.counters[page_key] = {str(k): int(v) for k, v in counters.items()}
            for entry in _list(page, "comments", where):
                comment_where = f"{where}, comment {entry.get('id')!r}"
                status = _str(entry, "status", comment_where)
                if status not in STATUSES:
                    raise InvalidImport(f"{comment_where}: unknown status {status!r}")
                batch.comments.append((name, ImportedComment(
                    source_id=_str(entry, "id", comment_where), id=entry["id"],
                    path=page_key[1],
                    parent_source_id=_optional_str(entry, "parent_id", comment_where) or None,
                    author_name=_optional_str(entry, "author_name", comment_where),
                    author_email=_optional_str(entry, "author_email", comment_where),
                    author_website=_optional_str(entry, "author_website", comment_where),
                    body_markdown=_optional_str(entry, "body_markdown", comment_where),
                    status=status,
                    created_at=parse_time(entry.get("created_at"), comment_where),
                    edited_at=parse_time(entry["edited_at"], comment_where)
                    if entry.get("edited_at") else None,
                    votes_up=_count(entry, "votes_up", comment_where),
                    votes_down=_count(entry, "votes_down", comment_where))))
    return batch


def _list(container: dict, key: str, where: str) -> list[dict[str, Any]]:
    value = container.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidImport(f"{where}: {key!r} must be a list of objects")
    return value


def _optional_str(container: dict, key: str, where: str) -> str:
    """A text field that may be missing or null; anything but text means a damaged file
    (str() of a list would import "['…']" as someone's name)."""
    value = container.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidImport(f"{where}: {key!r} must be a string, not {type(value).__name__}")
    return value


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(container: dict, key: str, where: str) -> int:
    value = container.get(key, 0)
    if not _is_count(value):
        raise InvalidImport(f"{where}: {key!r} must be a non-negative integer")
    return value


def _str(container: dict, key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidImport(f"{where}: {key!r} is missing or not a string")
    return value


# -- Disqus ------------------------------------------------------------------------------------

DSQ = "{http://disqus.com/disqus-internals}id"


def _xml_root(path: Path):
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        return ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise InvalidImport(f"{path} is not well-formed XML: {exc}") from None
    except DefusedXmlException as exc:
        raise InvalidImport(f"{path} uses XML entities or DTDs, which are refused: "
                            f"{type(exc).__name__}") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element, name: str):
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def parse_disqus(path: Path, site: str | None) -> ImportBatch:
    root = _xml_root(path)
    if _local(root.tag) != "disqus":
        raise InvalidImport(f"{path} is XML but not a Disqus export (root <{_local(root.tag)}>)")
    batch = ImportBatch("disqus", site)
    threads: dict[str, str] = {}
    for element in root:
        if _local(element.tag) != "thread":
            continue
        thread_id = element.get(DSQ)
        link = _text(_child(element, "link"))
        if not thread_id or not link:
            raise InvalidImport(f"{path}: a <thread> lacks its dsq:id or <link>")
        threads[thread_id] = page_path(link, f"thread {thread_id}")
        batch.pages[(site, threads[thread_id])] = _text(_child(element, "title"))
    for element in root:
        if _local(element.tag) != "post":
            continue
        post_id = element.get(DSQ)
        if not post_id:
            raise InvalidImport(f"{path}: a <post> lacks its dsq:id")
        where = f"post {post_id}"
        thread = _child(element, "thread")
        thread_id = thread.get(DSQ) if thread is not None else None
        if thread_id not in threads:
            raise InvalidImport(f"{where}: its thread {thread_id!r} is not in the file")
        parent = _child(element, "parent")
        author = _child(element, "author")
        deleted = _text(_child(element, "isDeleted")).lower() == "true"
        spam = _text(_child(element, "isSpam")).lower() == "true"
        body = html_to_markdown(_text(_child(element, "message")))
        batch.comments.append((site, ImportedComment(
            source_id=post_id, path=threads[thread_id],
            parent_source_id=parent.get(DSQ) if parent is not None else None,
            author_name=_text(_child(author, "name")) if author is not None else "",
            author_email=_text(_child(author, "email")) if author is not None else "",
            author_website="", body_markdown="" if deleted else body,
            status="deleted" if deleted else "spam" if spam else "approved",
            created_at=parse_time(_text(_child(element, "createdAt")), where))))
    return batch


# -- WordPress WXR -----------------------------------------------------------------------------

WP_STATUS = {"1": "approved", "approve": "approved", "0": "pending", "hold": "pending",
             "spam": "spam", "trash": "deleted", "post-trashed": "deleted"}


def parse_wordpress(path: Path, site: str | None) -> ImportBatch:
    root = _xml_root(path)
    channel = _child(root, "channel") if _local(root.tag) == "rss" else None
    if channel is None:
        raise InvalidImport(f"{path} is XML but not a WordPress export (no <rss><channel>)")
    batch = ImportBatch("wordpress", site)
    for item in channel:
        if _local(item.tag) != "item":
            continue
        link = _text(_child(item, "link"))
        post_id = _text(_child(item, "post_id"), "?")
        comments = [child for child in item if _local(child.tag) == "comment"]
        if not comments:
            continue
        if not link:
            raise InvalidImport(f"{path}: item {post_id} has comments but no <link>")
        page = page_path(link, f"item {post_id}")
        batch.pages[(site, page)] = _text(_child(item, "title"))
        for comment in comments:
            comment_id = _text(_child(comment, "comment_id"))
            where = f"comment {comment_id or '?'} of item {post_id}"
            if not comment_id:
                raise InvalidImport(f"{where}: <wp:comment_id> is missing")
            kind = _text(_child(comment, "comment_type"))
            if kind in ("pingback", "trackback"):
                batch.skipped.append(f"{where}: a {kind}, not a comment")
                continue
            approved = _text(_child(comment, "comment_approved"), "1")
            status = WP_STATUS.get(approved)
            if status is None:
                raise InvalidImport(f"{where}: unknown approval state {approved!r}")
            # comment_date_gmt is 0000-00-00 for comments WordPress never published; the local
            # date is then the best there is.
            gmt = _text(_child(comment, "comment_date_gmt"))
            when = gmt if gmt and not gmt.startswith("0000") else \
                _text(_child(comment, "comment_date"))
            parent = _text(_child(comment, "comment_parent"), "0")
            body = html_to_markdown(_text(_child(comment, "comment_content")))
            batch.comments.append((site, ImportedComment(
                source_id=f"{post_id}/{comment_id}", path=page,
                parent_source_id=f"{post_id}/{parent}" if parent not in ("", "0") else None,
                author_name=_text(_child(comment, "comment_author")),
                author_email=_text(_child(comment, "comment_author_email")),
                author_website=_text(_child(comment, "comment_author_url")),
                body_markdown="" if status == "deleted" else body, status=status,
                created_at=parse_time(when, where))))
    return batch


# -- Isso --------------------------------------------------------------------------------------

ISSO_MODES = {1: "approved", 2: "pending", 4: "deleted"}


def parse_isso(path: Path, site: str | None) -> ImportBatch:
    try:
        database = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in database.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"threads", "comments"} <= tables:
                raise InvalidImport(f"{path} is a SQLite database but not Isso's (no threads "
                                    "and comments tables)")
            threads = {row[0]: (row[1], row[2] or "") for row in database.execute(
                "SELECT id, uri, title FROM threads")}
            rows = database.execute(
                "SELECT tid, id, parent, created, modified, mode, text, author, email, "
                "website, likes, dislikes FROM comments ORDER BY id").fetchall()
        finally:
            database.close()
    except sqlite3.DatabaseError as exc:
        raise InvalidImport(f"{path} cannot be read as an Isso database: {exc}") from None
    batch = ImportBatch("isso", site)
    for uri, title in threads.values():
        batch.pages[(site, page_path(uri, f"thread {uri!r}"))] = title
    for tid, comment_id, parent, created, modified, mode, text, author, email, website, \
            likes, dislikes in rows:
        where = f"comment {comment_id}"
        if tid not in threads:
            raise InvalidImport(f"{where}: its thread {tid} is not in the database")
        status = ISSO_MODES.get(mode)
        if status is None:
            raise InvalidImport(f"{where}: unknown mode {mode!r}")
        batch.comments.append((site, ImportedComment(
            source_id=str(comment_id), path=page_path(threads[tid][0], where),
            parent_source_id=str(parent) if parent else None,
            author_name=_isso_text(author, where, "author"),
            author_email=_isso_text(email, where, "email"),
            author_website=_isso_text(website, where, "website"),
            body_markdown="" if status == "deleted" else _isso_text(text, where, "text"),
            status=status,
            created_at=parse_time(created, where),
            edited_at=parse_time(modified, where) if modified else None,
            votes_up=int(likes or 0), votes_down=int(dislikes or 0))))
    return batch


def _isso_text(value: Any, where: str, column: str) -> str:
    """SQLite keeps whatever type was stored: a BLOB or number in a text column is damage."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidImport(f"{where}: the {column} column holds {type(value).__name__}, "
                            "not text")
    return value
