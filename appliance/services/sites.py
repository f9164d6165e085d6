"""Site rules: names, origins, and the cached lookup web workers use on every request."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from urllib.parse import urlsplit

import peewee as pw

from appliance.errors import Conflict, InvalidInput, ServiceUnavailable, UnknownSite
from appliance.storage import site_store
from appliance.storage.site_store import SiteRecord

SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
DEMO_SITE = "demo"


def validate_site_name(name: str) -> str:
    if not isinstance(name, str) or not SITE_NAME.match(name):
        raise InvalidInput(f"Site name {name!r} must be 1-63 characters of a-z, 0-9 and -, "
                           "starting with a letter or digit.", details={"field": "site"})
    return name


def normalise_origin(origin: str) -> str:
    """`https://Blog.Example:443/` -> `https://blog.example`; anything but an origin is refused."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput(f"Origin {origin!r} is not a URL.",
                           details={"field": "origin"}) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Origin {origin!r} must look like https://blog.example.",
                           details={"field": "origin"})
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidInput(f"Origin {origin!r} must have no path, query or user: "
                           "just scheme://host[:port].", details={"field": "origin"})
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    suffix = f":{port}" if port and port != default_port else ""
    return f"{parts.scheme}://{host}{suffix}"


def add_site(database: pw.Database, name: str, origins: list[str], title: str = "",
             accept_unpublished_pages: bool = True) -> SiteRecord:
    record = SiteRecord(name=validate_site_name(name), title=title,
                        origins=tuple(dict.fromkeys(normalise_origin(o) for o in origins)),
                        accept_unpublished_pages=accept_unpublished_pages)
    if not site_store.insert_site(database, record):
        raise Conflict(f"A site named {name!r} exists already.")
    return record


def ensure_site(database: pw.Database, name: str, origins: list[str], title: str = "",
                reactions: tuple[str, ...] | None = None) -> None:
    """Create the site if missing (showing `reactions`, or the defaults); otherwise add any of
    `origins` it lacks (used by `up`). An existing site's reaction types are its owner's."""
    existing = site_store.get_site(database, name)
    if existing is None:
        try:
            record = add_site(database, name, origins, title)
        except Conflict:
            return
        if reactions is not None:
            site_store.update_site(database, dataclasses.replace(record, reactions=reactions))
        return
    wanted = tuple(dict.fromkeys(existing.origins + tuple(normalise_origin(o) for o in origins)))
    if wanted != existing.origins:
        site_store.update_site(database, dataclasses.replace(existing, origins=wanted))


def origin_allowed(site: SiteRecord, origin: str | None, own_origin: str | None = None) -> bool:
    """No Origin header (server-side or same-origin GET) is allowed; otherwise it must match."""
    if not origin:
        return True
    try:
        normalised = normalise_origin(origin)
    except InvalidInput:
        return False
    return normalised in site.origins or (own_origin is not None and normalised == own_origin)


class SiteDirectory:
    """Site lookups for web workers, cached for a few seconds so a request costs no SQL."""

    def __init__(self, database: pw.Database, run_sql, ttl_s: float) -> None:
        self._database = database
        self._run_sql = run_sql
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, SiteRecord | None]] = {}
        # One SQL read per site at a time: when the cached copy expires under load, every
        # request in flight would otherwise read the same row (a worker with 32 requests
        # open spent a tenth of its time on these duplicate reads).
        self._loading: dict[str, asyncio.Future[tuple[float, SiteRecord | None]]] = {}

    async def get(self, name: str) -> SiteRecord:
        if not isinstance(name, str) or not SITE_NAME.match(name):
            raise UnknownSite(f"No site is named {name!r}.")
        hit = self._cache.get(name)
        if hit is None or time.monotonic() - hit[0] > self._ttl_s:
            loading = self._loading.get(name)
            if loading is None:
                loading = asyncio.ensure_future(self._load(name, hit))
                self._loading[name] = loading
                loading.add_done_callback(lambda done: self._loaded(name, done))
            # Shielded: a cancelled request must not cancel the read the others wait for.
            hit = await asyncio.shield(loading)
        if hit[1] is None:
            raise UnknownSite(f"No site is named {name!r}.")
        return hit[1]

    async def _load(self, name: str, stale: tuple[float, SiteRecord | None] | None
                    ) -> tuple[float, SiteRecord | None]:
        now = time.monotonic()
        try:
            record = await self._run_sql(site_store.get_site, self._database, name)
        except ServiceUnavailable:
            if stale is None:
                raise
            # Database down: keep serving the last known site so readers' interactions
            # are still accepted (they only touch Redis).
            record = stale[1]
        if len(self._cache) > 10000:
            self._cache.clear()
        hit = (now, record)
        self._cache[name] = hit
        return hit

    def _loaded(self, name: str, done: asyncio.Future) -> None:
        self._loading.pop(name, None)
        if not done.cancelled():
            done.exception()  # retrieved here too, in case every waiter was cancelled
