"""Which browsers may use a site: the Origin check and CORS headers of every public route."""

from __future__ import annotations

from quart import Response, request

from appliance.errors import OriginNotAllowed, OvationError
from appliance.services.client_address import client_address
from appliance.services.rate_limits import Charge, Limit, site_limit
from appliance.services.sites import origin_allowed
from appliance.services.visitors import visitor_hash
from appliance.storage.site_store import SiteRecord
from web.routes import runtime
from web.runtime import WebRuntime

CORS_MAX_AGE_S = "600"
CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"


def own_origin() -> str:
    return f"{request.scheme}://{request.host}".lower()


def client_ip() -> str | None:
    """The client's address: forwarding headers count only from OVATION_TRUSTED_PROXIES."""
    return client_address(request.remote_addr, request.headers,
                          runtime().settings.trusted_proxy_networks)


async def rate_limit(route_class: str, site: str | SiteRecord, visitor_id: str | None = None,
                     address: str | None = None) -> None:
    """Charge this request to its network (and visitor) for `route_class`; 429 when over.

    `route_class` is interactions, reads or admin; the site's own overrides win over the
    settings. Runs before any work is done, so a refused request changes nothing."""
    charge = await rate_charge(route_class, site, visitor_id, address)
    if charge is not None:
        await charge.run()


async def rate_charge(route_class: str, site: str | SiteRecord, visitor_id: str | None = None,
                      address: str | None = None) -> Charge | None:
    """What `rate_limit` would charge, not yet run (None when no limit applies): the
    interaction route runs it inside the interaction's own Redis script."""
    record = site if isinstance(site, SiteRecord) else await _known_site(site)
    return await charge_for(runtime(), route_class, record or site,
                            visitor_id, address or client_ip())


async def charge_for(rt: WebRuntime, route_class: str, site: str | SiteRecord,
                     visitor_id: str | None, address: str | None) -> Charge | None:
    """`rate_charge` for a known client address, outside a Quart request (fast_interactions)."""
    record = site if isinstance(site, SiteRecord) else None
    name = record.name if record is not None else site
    per_network = site_limit(rt.settings, record, f"{route_class}_per_min")
    charges = []
    if per_network > 0:  # hash only when it is charged: a limit of 0 needs no salt from SQL
        network = await rt.comments.ip_salts.rate_key(name, address)
        charges.append((Limit("net", per_network, 60), network))
    per_visitor = site_limit(rt.settings, record, "interactions_per_visitor_per_min")
    if visitor_id and route_class == "interactions" and per_visitor > 0:
        charges.append((Limit("visitor", per_visitor, 60),
                        visitor_hash(rt.hash_key, name, visitor_id)))
    return rt.limiter.charge(route_class, charges)


async def _known_site(name: str) -> SiteRecord | None:
    """The site's record (cached: the route has just read it), or None for a route with no
    site or an unknown one: the deployment's limits apply."""
    try:
        return await runtime().sites.get(name)
    except OvationError:
        return None


async def site_for_request(site: str) -> SiteRecord:
    """The site named in the URL, if the request's Origin may use it."""
    record = await runtime().sites.get(site)
    check_origin(record, request.headers.get("Origin"), own_origin())
    return record


def check_origin(record: SiteRecord, origin: str | None, own: str) -> None:
    """Raise OriginNotAllowed unless `origin` (the request's, if any) may use the site."""
    if not origin_allowed(record, origin, own):
        site = record.name
        raise OriginNotAllowed(f"Origin {origin} is not allowed for site {site!r}; add it with "
                               f"`platformctl site set {site} --origin {origin}`.")


async def add_cors_headers(response: Response) -> Response:
    """after_request for public blueprints: grant CORS to the site's allowed origins only."""
    origin = request.headers.get("Origin")
    site = (request.view_args or {}).get("site")
    for name, value in await cors_headers(runtime(), site, origin, own_origin()):
        if name == "Vary":
            response.vary.add(value)
        else:
            response.headers[name] = value
    return response


async def cors_headers(rt: WebRuntime, site: str | None, origin: str | None,
                       own: str) -> list[tuple[str, str]]:
    """The CORS headers of an answer about `site` to a request from `origin`."""
    if not origin or not site:
        return []
    try:
        record = await rt.sites.get(site)
    except OvationError:  # unknown site, or the database is down: no grant, and no 500
        return []
    if not origin_allowed(record, origin, own):
        return [("Vary", "Origin")]
    return [("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", CORS_METHODS),
            ("Access-Control-Allow-Headers", "Content-Type"),
            ("Access-Control-Max-Age", CORS_MAX_AGE_S), ("Vary", "Origin")]
