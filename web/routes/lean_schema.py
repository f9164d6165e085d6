"""quart-schema's request validation and response documentation, without its per-request costs,
for routes that run on every page view (recording an interaction).

quart-schema's `validate_request` builds a pydantic TypeAdapter for every request it validates,
and `validate_response` turns the returned model into a dict and the dict into JSON through two
more conversions. These decorators put the same declarations on the route, so /openapi.json
documents it exactly as before, but validate with one adapter built at import and leave the
response to the route, which answers with JSON it encoded itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from pydantic import TypeAdapter, ValidationError
from quart import Response, request
from quart_schema import DataSource, RequestSchemaValidationError
from quart_schema.validation import QUART_SCHEMA_REQUEST_ATTRIBUTE, QUART_SCHEMA_RESPONSE_ATTRIBUTE


def plain_text_from_a_page(content_type: str | None, origin: str | None) -> bool:
    """Whether a body that is not declared JSON is read as JSON all the same: a `text/plain`
    one from a request that names its Origin (what a browser's fetch sends as a "simple"
    request, with no CORS preflight before it).

    Safe only on a route that runs the site's Origin check before it does anything (the
    interactions route): the check refuses a foreign origin there just as the preflight
    would have, and a browser always names the Origin of a cross-origin POST. A text/plain
    body without an Origin (an old browser's form post, say) stays refused, so that no page
    can make its readers' browsers post to a route they could not post to before. See
    docs/api.md, "Origins and CORS"."""
    if not content_type or not origin:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "text/plain"


def validate_json_body(model_class: type, *, plain_text: bool = False) -> Callable:
    """Like `quart_schema.validate_request(model_class)` for a JSON body, with the same errors
    (RequestSchemaValidationError wrapping pydantic's), the validated model passed as `data`.
    With `plain_text`, also a text/plain body from a page (`plain_text_from_a_page`)."""
    adapter = TypeAdapter(model_class)

    def decorator(func: Callable) -> Callable:
        setattr(func, QUART_SCHEMA_REQUEST_ATTRIBUTE, (model_class, DataSource.JSON))

        @wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            force = plain_text and plain_text_from_a_page(request.headers.get("Content-Type"),
                                                          request.headers.get("Origin"))
            body = await request.get_json(force=force)
            try:
                data = adapter.validate_python(body)
            except (TypeError, ValidationError, ValueError) as error:
                raise RequestSchemaValidationError(error) from None
            return await func(*args, data=data, **kwargs)

        return wrapper

    return decorator


def documents_responses(*responses: tuple[type, int]) -> Callable:
    """Declare (model, status) answers for /openapi.json, as `validate_response` does, without
    wrapping the route: it answers with `json_response` of data shaped like the model."""

    def decorator(func: Callable) -> Callable:
        schemas = getattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {})
        for model_class, status in responses:
            schemas[status] = (model_class, None)
        setattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, schemas)
        return func

    return decorator


def json_response(body: dict, status: int = 200) -> Response:
    """Compact JSON with sorted keys and a final newline, as the app's JSON provider writes it."""
    return Response(json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n", status=status,
                    content_type="application/json")
