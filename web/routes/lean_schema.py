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


def validate_json_body(model_class: type) -> Callable:
    """Like `quart_schema.validate_request(model_class)` for a JSON body, with the same errors
    (RequestSchemaValidationError wrapping pydantic's), the validated model passed as `data`."""
    adapter = TypeAdapter(model_class)

    def decorator(func: Callable) -> Callable:
        setattr(func, QUART_SCHEMA_REQUEST_ATTRIBUTE, (model_class, DataSource.JSON))

        @wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            body = await request.get_json()
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
