"""Admin API for moderators: list comments, change their status, ban authors and lift bans
(scope moderate)."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import (
    security_scheme,
    tag,
    validate_querystring,
    validate_request,
    validate_response,
)

from appliance.errors import UnknownComment
from appliance.services import bans
from appliance.services.moderation import ban_author, moderate
from appliance.storage import comment_store
from web.auth import BEARER_SECURITY, token_required
from web.routes import runtime
from web.routes.admin import admin_headers
from web.schemas import (
    AdminCommentModel,
    AdminCommentsQuery,
    AdminCommentsResponse,
    BanAccepted,
    BanModel,
    BanRequest,
    BansQuery,
    BansResponse,
    ErrorResponse,
    ModerateRequest,
    ModerateResponse,
)

admin_comments = Blueprint("admin_comments", __name__, url_prefix="/api/v1/admin/sites/<site>")
admin_comments.after_request(admin_headers)


def _model(comment: comment_store.StoredComment) -> AdminCommentModel:
    return AdminCommentModel(
        id=comment.id, path=comment.path, parent_id=comment.parent_id, status=comment.status,
        author_name=comment.author_name, author_email=comment.author_email,
        author_website=comment.author_website, body_markdown=comment.body_markdown,
        html=comment.body_html, created_at=comment.created_at.isoformat() + "Z",
        edited_at=comment.edited_at.isoformat() + "Z" if comment.edited_at else None)


async def _comments_of_site(site: str, ids: list[str]) -> None:
    rt = runtime()
    found = await rt.sql.run(comment_store.get_comments, rt.database, ids)
    foreign = set(ids) - {comment.id for comment in found if comment.site == site}
    if foreign:
        raise UnknownComment(f"No comment of site {site!r} has id {', '.join(sorted(foreign))}.")


@admin_comments.get("/comments")
@token_required("moderate")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_querystring(AdminCommentsQuery)
@validate_response(AdminCommentsResponse, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
async def list_comments(site: str, query_args: AdminCommentsQuery) -> AdminCommentsResponse:
    """Comments of a site, newest first, with the private fields moderators need."""
    rt = runtime()
    await rt.sites.get(site)
    rows = await rt.sql.run(comment_store.list_comments, rt.database, site, query_args.status,
                            query_args.limit, query_args.offset)
    counts = await rt.sql.run(comment_store.count_by_status, rt.database, site)
    return AdminCommentsResponse(comments=[_model(row) for row in rows], counts=counts)


@admin_comments.post("/comments/moderate")
@token_required("moderate")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_request(ModerateRequest)
@validate_response(ModerateResponse, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
async def moderate_comments(site: str, data: ModerateRequest) -> ModerateResponse:
    """Approve, reject, mark as spam or delete comments; open pages see the change live."""
    rt = runtime()
    await rt.sites.get(site)
    await _comments_of_site(site, data.ids)
    changed = await rt.sql.run(moderate, rt.sync_redis, rt.database, data.ids, data.status)
    return ModerateResponse(changed=[comment.id for comment in changed], status=data.status)


@admin_comments.post("/bans")
@token_required("moderate")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_request(BanRequest)
@validate_response(BanAccepted, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
async def ban(site: str, data: BanRequest) -> BanAccepted:
    """Ban the author of a comment from commenting on this site (visitor, and network)."""
    rt = runtime()
    await rt.sites.get(site)
    await _comments_of_site(site, [data.comment_id])
    banned = await rt.sql.run(ban_author, rt.sync_redis, rt.database, data.comment_id,
                              data.network, data.reason, data.remove)
    return BanAccepted(comment_id=data.comment_id, banned=banned)


@admin_comments.get("/bans")
@token_required("moderate")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_querystring(BansQuery)
@validate_response(BansResponse, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
async def list_bans(site: str, query_args: BansQuery) -> BansResponse:
    """The site's bans, newest first; with `comment_id`, those that match its author."""
    rt = runtime()
    await rt.sites.get(site)
    if query_args.comment_id is not None:
        found = await rt.sql.run(bans.author_bans, rt.database, query_args.comment_id, True,
                                 site)
        found = found[query_args.offset:query_args.offset + query_args.limit]
    else:
        found = await rt.sql.run(comment_store.list_bans, rt.database, site, query_args.limit,
                                 query_args.offset)
    return BansResponse(bans=[BanModel(**bans.describe(ban)) for ban in found])


@admin_comments.delete("/bans/<ban_id>")
@token_required("moderate")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_response(BanModel, 200)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
async def lift_ban(site: str, ban_id: str) -> BanModel:
    """Lift a ban (a mistaken one, or one that has served its time): the visitor or network
    may comment again at once. Answers the ban lifted."""
    rt = runtime()
    await rt.sites.get(site)
    lifted = await rt.sql.run(bans.lift_ban, rt.sync_redis, rt.database,
                              bans.ban_id_from(ban_id), site)
    return BanModel(**bans.describe(lifted))
