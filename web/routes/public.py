"""The public API the widget calls: interactions and totals. Origins are checked per site."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag, validate_querystring, validate_request, validate_response

from appliance.errors import InvalidInput
from appliance.plugin_api import Kind
from appliance.services.counters import PageTotals
from appliance.services.site_reactions import SiteReaction
from web.routes import runtime
from web.routes.lean_schema import documents_responses, json_response, validate_json_body
from web.routes.site_access import (
    add_cors_headers,
    rate_charge,
    rate_limit,
    site_for_request,
)
from web.schemas import (
    BatchTotalsRequest,
    BatchTotalsResponse,
    ChoiceModel,
    ErrorResponse,
    InteractionRequest,
    InteractionResponse,
    PageTotalsModel,
    ReactionTypeModel,
    SiteConfigResponse,
    TotalsQuery,
)

public = Blueprint("public", __name__, url_prefix="/api/v1/sites/<site>")


def totals_model(page: PageTotals, comments: int = 0) -> PageTotalsModel:
    return PageTotalsModel(path=page.path, totals=page.totals, visitor=page.visitor,
                           stale=page.stale, comments=comments)


public.after_request(add_cors_headers)


@public.post("/interactions")
@tag(["public"])
@validate_json_body(InteractionRequest, plain_text=True)  # the widget's view needs no preflight
@documents_responses((InteractionResponse, 200), (ErrorResponse, 400), (ErrorResponse, 403),
                     (ErrorResponse, 404), (ErrorResponse, 503))
async def record_interaction(site: str, data: InteractionRequest) -> Response:
    """Record a view, like, unlike, applause or plugin reaction; answer with the live totals.

    Rules are enforced here, not in the widget: a like counts once per visitor, applause is
    capped per visitor per page (more is answered with the capped state, `applied` 0), views
    count once per visitor per page per window.
    """
    # Every page view calls this route: it validates with a prebuilt adapter and answers
    # with JSON it encodes itself (lean_schema), and the rate-limit charge runs inside the
    # interaction's Redis script, so a request costs one Redis round trip.
    record = await site_for_request(site)
    charge = await rate_charge("interactions", record, data.visitor)
    outcome = await runtime().counters.record(record, data.path, data.reaction, data.action,
                                              data.amount, data.visitor, data.choice,
                                              data.score, limit=charge)
    page = outcome.page
    return json_response({"path": page.path, "totals": page.totals, "visitor": page.visitor,
                          "stale": page.stale, "applied": outcome.applied})


@public.get("/totals")
@tag(["public"])
@validate_querystring(TotalsQuery)
@validate_response(PageTotalsModel, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 503)
async def page_totals(site: str, query_args: TotalsQuery) -> PageTotalsModel:
    """One page's live totals, and the visitor's own state when `visitor` is given."""
    record = await site_for_request(site)
    await rate_limit("reads", record.name)
    pages = await runtime().counters.totals(record, [query_args.path], query_args.visitor)
    counts = await runtime().comments.counts(record.name, [pages[0].path])
    return totals_model(pages[0], counts[pages[0].path])


@public.post("/totals/batch")
@tag(["public"])
@validate_request(BatchTotalsRequest)
@validate_response(BatchTotalsResponse, 200)
@validate_response(ErrorResponse, 400)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 503)
async def batch_totals(site: str, data: BatchTotalsRequest) -> BatchTotalsResponse:
    """Live totals of many pages in one request (an index page's post list)."""
    limit = runtime().settings.max_batch_paths
    if len(data.paths) > limit:
        raise InvalidInput(f"At most {limit} paths per batch.", details={"field": "paths"})
    record = await site_for_request(site)
    await rate_limit("reads", record.name)
    pages = await runtime().counters.totals(record, data.paths, data.visitor)
    counts = await runtime().comments.counts(record.name, list({p.path for p in pages}))
    return BatchTotalsResponse(pages=[totals_model(page, counts[page.path]) for page in pages])


@public.get("/config")
@tag(["public"])
@validate_response(SiteConfigResponse, 200)
@validate_response(ErrorResponse, 403)
@validate_response(ErrorResponse, 404)
@validate_response(ErrorResponse, 503)
async def site_config(site: str) -> SiteConfigResponse:
    """The site's reaction types, so the widget renders whatever plugins are enabled, and
    whether e-mail is sent, so it offers subscriptions only when a confirmation can arrive."""
    record = await site_for_request(site)
    await rate_limit("reads", record.name)
    reactions = [reaction_model(reaction) for reaction in runtime().counters.layout(record)]
    return SiteConfigResponse(site=record.name, title=record.title, reactions=reactions,
                              email=bool(runtime().settings.smtp_host))


def reaction_model(reaction: SiteReaction) -> ReactionTypeModel:
    declared = reaction.type
    is_score = reaction.kind is Kind.SCORE
    return ReactionTypeModel(
        name=declared.name, label=declared.label, icon=declared.icon, kind=declared.kind.value,
        per_visitor_cap=reaction.cap, max_amount=declared.max_amount,
        choices=[ChoiceModel(key=c.key, label=c.label, icon=c.icon) for c in reaction.choices],
        score_min=declared.score_min if is_score else None,
        score_max=declared.score_max if is_score else None, options=declared.options)
