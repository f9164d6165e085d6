"""POST /api/v1/sites/<site>/comments answered without Quart's per-request machinery.

Posting a comment cost the web worker about twice what the comment itself costs (validation,
Markdown, one Redis script): most of it was Quart's per-request plumbing (tasks, request
context, werkzeug objects, hooks, quart-schema's wrappers). This ASGI layer, in front of the
Quart app, answers a well-formed comment directly, with the same services, rules and answers
as the Quart route `comments.post_comment`: the site's origin check, `CommentService.submit`
(its checks, bans, duplicate and rate limits), the same 202 JSON (`comments.accepted_json`),
the same JSON for errors and the same headers (CORS from `site_access`, the app's security
headers).

Anything it does not recognise as a well-formed comment is handed to Quart unchanged (the body
read so far is replayed), before anything is done: a body that is not `application/json`, too
large, slow, not UTF-8, not JSON, or not valid for the schema (read exactly as the route reads
it: `json.loads`, then `CommentRequest` validated from Python). So every error about the
request itself comes from Quart's route and handlers, and the route stays the one
/openapi.json documents. Errors found after that (unknown site, origin, the service's checks,
rate limit, an outage) are answered here, as `web/errors.py` answers them. The frame is
`fast_path.FastRoute`, shared with the interactions' fast path.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import ValidationError

from web.routes.comments import accepted_json, comment_input, comment_request
from web.routes.fast_path import (
    FastRoute,
    HandToQuart,
    RequestHeaders,
    client_ip,
    error_answer,
    json_payload,
    own_origin,
)
from web.routes.site_access import check_origin, cors_headers
from web.runtime import WebRuntime
from web.schemas import CommentRequest

ROUTE = re.compile(r"^/api/v1/sites/([^/]+)/comments$")


class FastComments(FastRoute[CommentRequest]):
    """ASGI middleware in front of the Quart app (inside `FastInteractions`), installed by
    `create_app` with the app's security headers and the after_request hooks it reproduces."""

    route = ROUTE
    blueprint = "comments"
    description = "comments"

    def accepts(self, headers: RequestHeaders) -> bool:
        # The route reads JSON only when declared (`request.get_json()`, no force); Quart
        # also takes application/*+json, which the route answers.
        return headers.content_type == b"application/json"

    def parse(self, body: bytes) -> CommentRequest:
        """As `comments.json_body` reads it; any failure is the route's to answer."""
        try:
            return comment_request.validate_python(self._app.json.loads(body.decode()))
        except (RecursionError, TypeError, ValueError, ValidationError):
            # Not UTF-8, not JSON (UnicodeDecodeError and JSONDecodeError are ValueErrors),
            # nested too deep, or not valid: Quart's route gives the error its code.
            raise HandToQuart from None

    async def answer(self, rt: WebRuntime, scope: dict, headers: RequestHeaders, site: str,
                     data: CommentRequest, send: Callable) -> None:
        origin = headers.get(b"origin")
        own = own_origin(scope, headers)
        try:
            record = await rt.sites.get(site)
            check_origin(record, origin, own)
            submitted = await rt.comments.submit(record, comment_input(data),
                                                 client_ip(rt, scope, headers))
            status, payload, extra = 202, accepted_json(submitted).encode(), []
        except Exception as error:  # as web/errors.py's handlers answer it
            status, body, extra = error_answer(error)
            payload = json_payload(body)
        extra += await cors_headers(rt, site, origin, own)
        await self.send_json(send, status, payload, extra)
