"""Translates every failure at the web edge into `{"error": {"code", "message"}}` JSON."""

from __future__ import annotations

import logging

import redis
from quart import Quart, jsonify
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import WebsocketMismatch

from appliance.errors import OvationError, ServiceUnavailable

log = logging.getLogger("ovation.web")

_HTTP_CODES = {
    400: ("invalid_json", "The request body is not valid JSON."),
    404: ("not_found", "No such route."),
    405: ("method_not_allowed", "This route does not accept that method."),
    413: ("payload_too_large", "The request body is too large."),
}


REDIS_UNAVAILABLE = "Redis is not reachable right now; try again shortly."
INTERNAL_ERROR = "Something went wrong on our side; the server log has the details."


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    """`{"error": {"code", "message"[, "details"]}}`, the shape of every error answer."""
    body: dict = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


def error_response(code: str, message: str, status: int, details: dict | None = None):
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    return response


def describe_validation_error(error: RequestSchemaValidationError) -> tuple[str, dict]:
    """A one-line message naming the first bad field, plus the field list for clients."""
    cause = error.validation_error
    errors = getattr(cause, "errors", None)
    if callable(errors):
        items = cause.errors()
        fields = [".".join(str(part) for part in item["loc"]) or "body" for item in items]
        first = items[0]
        where = fields[0]
        return f"{where}: {first['msg']}", {"fields": fields}
    return str(cause), {}


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(OvationError)
    async def ovation_error(error: OvationError):
        response = error_response(error.code, error.message, error.status,
                                  error.details or None)
        retry_after = getattr(error, "retry_after_s", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(error: RequestSchemaValidationError):
        message, details = describe_validation_error(error)
        if isinstance(error.validation_error, TypeError):  # body was not a JSON object at all
            return error_response("invalid_input", "The body must be a JSON object.", 400)
        return error_response("invalid_input", message, 400, details)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException):
        if isinstance(error, WebsocketMismatch):  # a plain HTTP request to the live socket
            return error_response("invalid_input", "This URL is a WebSocket endpoint: connect "
                                  "with a WebSocket client (ws:// or wss://).", 400)
        status = error.code or 500
        code, message = _HTTP_CODES.get(status, ("http_error", error.description or ""))
        return error_response(code, message, status)

    # Redis restarting or unreachable (BusyLoadingError is a ConnectionError): an outage, a
    # 503 as for the database (SqlRunner), whichever service made the call; never a 500.
    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    async def redis_unavailable(error: redis.exceptions.RedisError):
        log.warning("Redis is not reachable: %s", error)
        return error_response(ServiceUnavailable.code, REDIS_UNAVAILABLE, 503)

    @app.errorhandler(UnicodeDecodeError)
    async def bad_encoding(_error: UnicodeDecodeError):
        return error_response("invalid_json", "The request body is not UTF-8.", 400)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception):
        log.exception("unhandled error: %s", error)
        return error_response("internal_error", INTERNAL_ERROR, 500)
