"""Which browsers may use a site: the Origin check and CORS headers of every public route."""

from __future__ import annotations

from quart import Response, request

from appliance.errors import OriginNotAllowed, OvationError
from appliance.services.sites import origin_allowed
from appliance.storage.site_store import SiteRecord
from web.routes import runtime

CORS_MAX_AGE_S = "600"
CORS_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"


def own_origin() -> str:
    return f"{request.scheme}://{request.host}".lower()


def client_ip() -> str | None:
    """The peer's address (forwarding headers are trusted only with the gateway issue)."""
    return request.remote_addr


async def site_for_request(site: str) -> SiteRecord:
    """The site named in the URL, if the request's Origin may use it."""
    record = await runtime().sites.get(site)
    origin = request.headers.get("Origin")
    if not origin_allowed(record, origin, own_origin()):
        raise OriginNotAllowed(f"Origin {origin} is not allowed for site {site!r}; add it with "
                               f"`platformctl site set {site} --origin {origin}`.")
    return record


async def add_cors_headers(response: Response) -> Response:
    """after_request for public blueprints: grant CORS to the site's allowed origins only."""
    origin = request.headers.get("Origin")
    site = (request.view_args or {}).get("site")
    if not origin or not site:
        return response
    try:
        record = await runtime().sites.get(site)
    except OvationError:  # unknown site, or the database is down: no grant, and no 500
        return response
    if origin_allowed(record, origin, own_origin()):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE_S
    response.vary.add("Origin")
    return response
