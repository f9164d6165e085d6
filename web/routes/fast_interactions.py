"""POST /api/v1/sites/<site>/interactions answered without Quart's per-request machinery.

Every page view of every reader calls this route, and Quart spends more on a request than the
interaction itself costs: two tasks per request (body and handler), a request context, werkzeug
request and response objects, hooks and signals. This ASGI layer, in front of the Quart app,
answers a well-formed interaction directly, with the same services, rules and answers as the
Quart route in `public.py`: the site's origin check, the rate limits (inside the interaction's
Redis script), the counter rules, the same JSON for totals and errors, and the same headers
(CORS from `site_access`, the app's security headers).

Anything it does not recognise as a well-formed interaction is handed to Quart unchanged (the
body read so far is replayed), before anything is recorded: another method or path, a body
that is not `application/json`, too large, slow, not JSON, or not valid for the schema. So
every error about the request itself comes from Quart's route and handlers, and the route
stays the one /openapi.json documents. (A `text/plain` body counts as JSON when the request
names its Origin, as on the route: see `lean_schema.plain_text_from_a_page`.) Errors found
after that (unknown site, origin, rate limit, counter rules, an outage) are answered here,
exactly as `web/errors.py` answers them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import TypeAdapter, ValidationError

from web.routes.fast_path import (
    FastRoute,
    HandToQuart,
    RequestHeaders,
    client_ip,
    error_answer,
    json_payload,
    own_origin,
)
from web.routes.lean_schema import plain_text_from_a_page
from web.routes.site_access import charge_for, check_origin, cors_headers
from web.runtime import WebRuntime
from web.schemas import InteractionRequest

ROUTE = re.compile(r"^/api/v1/sites/([^/]+)/interactions$")
JSON_TYPES = (b"application/json",)
_INTERACTION = TypeAdapter(InteractionRequest)


class FastInteractions(FastRoute[InteractionRequest]):
    """ASGI middleware in front of the Quart app (`app.asgi_app`), installed by `create_app`
    with the app's security headers and the after_request hooks it reproduces; the frame
    (matching, reading, handing to Quart, turning itself off) is `fast_path.FastRoute`."""

    route = ROUTE
    blueprint = "public"
    description = "interactions"

    def accepts(self, headers: RequestHeaders) -> bool:
        return headers.content_type in JSON_TYPES or plain_text_from_a_page(
            headers.content_type.decode("latin-1"), headers.get(b"origin"))

    def parse(self, body: bytes) -> InteractionRequest:
        try:
            return _INTERACTION.validate_json(body)
        except ValidationError:  # Quart's route gives the error its code and message
            raise HandToQuart from None

    async def answer(self, rt: WebRuntime, scope: dict, headers: RequestHeaders, site: str,
                     data: InteractionRequest, send: Callable) -> None:
        origin = headers.get(b"origin")
        own = own_origin(scope, headers)
        extra: list[tuple[str, str]] = []
        try:
            record = await rt.sites.get(site)
            check_origin(record, origin, own)
            charge = await charge_for(rt, "interactions", record, data.visitor,
                                      client_ip(rt, scope, headers))
            outcome = await rt.counters.record(record, data.path, data.reaction, data.action,
                                               data.amount, data.visitor, data.choice,
                                               data.score, limit=charge)
            page = outcome.page
            status, body = 200, {"applied": outcome.applied, "path": page.path,
                                 "stale": page.stale, "totals": page.totals,
                                 "visitor": page.visitor}
        except Exception as error:  # as web/errors.py's handlers answer it
            status, body, extra = error_answer(error)
        extra += await cors_headers(rt, site, origin, own)
        await self.send_json(send, status, json_payload(body), extra)
