"""The admin API: for the blog's own scripts and tools, authenticated by bearer token.

No CORS: it is not meant for readers' browsers. Every answer is `Cache-Control: no-store`.
"""

from __future__ import annotations

from quart import Blueprint, Response, g
from quart_schema import security_scheme, tag, validate_request, validate_response

from appliance.services import publishing
from appliance.storage import site_store
from web.auth import BEARER_SECURITY, WWW_AUTHENTICATE, token_required
from web.routes import runtime
from web.schemas import (
    AdminSiteModel,
    AdminSitesResponse,
    ErrorResponse,
    PublishAccepted,
    PublishRequest,
)

admin = Blueprint("admin", __name__, url_prefix="/api/v1/admin")


@admin.after_request
async def admin_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


@admin.post("/sites/<site>/pages")
@token_required("admin")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_request(PublishRequest)
@validate_response(PublishAccepted, 202)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 503)
async def publish_page(site: str, data: PublishRequest) -> tuple[PublishAccepted, int]:
    """Publish a post: queue a publish event (scope `admin`).

    Answers 202 as soon as the publish stream has the event; the listener then stores the page
    and sends the live `new_post` event and the notifications. Sending the same post again
    queues a new event that updates the page (its title and date).
    """
    rt = runtime()
    await rt.sites.get(site)  # unknown_site (404)
    publication = publishing.prepare(site, data.path, data.title, data.published_at,
                                     max_path_length=rt.settings.max_path_length, source="api")
    await publishing.enqueue_async(rt.redis, publication)
    body = publication.body()
    return PublishAccepted(event_id=publication.event_id, site=publication.site,
                           path=publication.path, title=publication.title,
                           published_at=body["published_at"]), 202


@admin.get("/sites")
@token_required("read")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_response(AdminSitesResponse, 200)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 503)
async def list_sites() -> AdminSitesResponse:
    """Every site, with its origins, page count and feed (scope `read`).

    A token bound to one site sees only that site.
    """
    rt = runtime()
    rows = await rt.sql.run(site_store.list_sites, rt.database)
    bound = g.admin_token.site
    return AdminSitesResponse(sites=[
        AdminSiteModel(name=record.name, title=record.title, origins=list(record.origins),
                       accept_unpublished_pages=record.accept_unpublished_pages, pages=pages,
                       feed_url=record.feed_url,
                       reactions=[reaction.name for reaction in rt.counters.layout(record)])
        for record, pages in rows if bound is None or record.name == bound])
