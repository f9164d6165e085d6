"""Admin API for readers' data requests: export or erase one visitor's data (scope admin)."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import security_scheme, tag, validate_request, validate_response

from appliance.services.privacy import erase_visitor, export_visitor
from web.auth import BEARER_SECURITY, token_required
from web.routes import runtime
from web.routes.admin import admin_headers
from web.schemas import ErrorResponse, VisitorErased, VisitorExport, VisitorRequest

admin_privacy = Blueprint("admin_privacy", __name__,
                          url_prefix="/api/v1/admin/sites/<site>/visitors")
admin_privacy.after_request(admin_headers)


@admin_privacy.post("/export")
@token_required("admin")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_request(VisitorRequest)
@validate_response(VisitorExport, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
async def export(site: str, data: VisitorRequest) -> VisitorExport:
    """Everything stored about one visitor on this site: reaction states, votes, comments."""
    rt = runtime()
    await rt.sites.get(site)
    exported = await rt.sql.run(export_visitor, rt.sync_redis, rt.database, rt.hash_key, site,
                                data.visitor)
    return VisitorExport(**exported)


@admin_privacy.post("/erase")
@token_required("admin")
@tag(["admin"])
@security_scheme(BEARER_SECURITY)
@validate_request(VisitorRequest)
@validate_response(VisitorErased, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 401)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
async def erase(site: str, data: VisitorRequest) -> VisitorErased:
    """Erase one visitor's reaction state and comments on this site; counts stay."""
    rt = runtime()
    await rt.sites.get(site)
    erased = await rt.sql.run(erase_visitor, rt.sync_redis, rt.database, rt.hash_key, site,
                              data.visitor)
    return VisitorErased(**erased)
