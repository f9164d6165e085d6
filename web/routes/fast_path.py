"""The parts every ASGI fast path in front of Quart shares (fast_interactions, fast_comments).

A fast path answers one hot POST route without Quart's per-request machinery (two tasks per
request, a request context, werkzeug request and response objects, hooks and signals), with
the route's own services, rules, answers and headers. `FastRoute` is the frame: it matches the
route, reads the body, hands anything it does not recognise to Quart unchanged (the body read
so far is replayed), and turns itself off when the app has a request hook it does not
reproduce. The helpers below answer as Quart would: the JSON of `web/errors.py`'s handlers,
the app's security headers and the site's CORS headers (`site_access.cors_headers`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import redis
from quart import Quart
from quart.signals import got_request_exception, request_finished, request_started
from werkzeug.datastructures import Headers
from werkzeug.sansio.utils import get_host

from appliance.errors import OvationError, ServiceUnavailable
from appliance.services.client_address import client_address
from web.errors import INTERNAL_ERROR, REDIS_UNAVAILABLE, error_body
from web.runtime import WebRuntime

log = logging.getLogger("ovation.web")
ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]
HeaderList = list[tuple[str, str]]
T = TypeVar("T")


class HandToQuart(Exception):
    """The request is not one the fast path answers: Quart's route answers it."""


class Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


class FastRoute(Generic[T]):
    """ASGI middleware in front of the Quart app answering POSTs to one route (`route`, whose
    first group is the site), installed by `create_app` with the app's security headers and
    the after_request hooks it reproduces (the app's and the route's blueprint's).

    A subclass says which bodies it takes (`accepts`, from the headers; `parse`, the whole
    body, raising HandToQuart for anything the route's own validation should answer) and
    answers the parsed request (`answer`)."""

    route: re.Pattern[str]
    blueprint: str  # the route's blueprint: its hooks are the ones reproduced
    description: str  # for the log, when the app's hooks turn the fast path off

    def __init__(self, app: Quart, inner: ASGIApp, security_headers: HeaderList,
                 expected_hooks: dict[str | None, list[Callable]]) -> None:
        self._app = app
        self._inner = inner
        # The headers the app's after_request hook sets on every JSON answer.
        self._security = [(name.lower().encode(), value.encode())
                          for name, value in security_headers]
        self._expected_hooks = expected_hooks  # Quart's after_request hooks it reproduces
        self._known: bool | None = None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        runtime = self._app.extensions.get("ovation")
        match = None
        if (scope["type"] == "http" and scope["method"] == "POST" and runtime is not None
                and not scope.get("root_path") and scope.get("http_version") != "1.0"):
            match = self.route.match(scope["path"])
        if match is None:
            return await self._inner(scope, receive, send)
        headers = RequestHeaders(scope["headers"])
        body = Body()
        try:
            if not self.enabled or not self.accepts(headers):
                raise HandToQuart
            data = self.parse(await read_body(self._app, headers, receive, body))
        except HandToQuart:
            return await self._inner(scope, body.replay(receive), send)
        except Disconnected:
            return None
        await self.answer(runtime, scope, headers, match.group(1), data, send)

    @property
    def enabled(self) -> bool:
        """Whether this layer answers: only if Quart would run no hook on the route but those
        it reproduces (the app's security headers, the blueprint's CORS). Looked at once, at
        the first request, when the app's hooks are all registered: a hook it does not know
        turns it off, so that it never answers differently from the route."""
        if self._known is None:
            self._known = hooks_known(self._app, self.blueprint, self._expected_hooks)
            if not self._known:
                log.warning("%s take Quart's route: the app has request hooks the fast path "
                            "does not reproduce", self.description)
        return self._known

    def accepts(self, headers: RequestHeaders) -> bool:
        """Whether a body with these headers may be one the fast path answers."""
        raise NotImplementedError

    def parse(self, body: bytes) -> T:
        """The validated request, or HandToQuart: the route answers the error."""
        raise NotImplementedError

    async def answer(self, rt: WebRuntime, scope: dict, headers: RequestHeaders, site: str,
                     data: T, send: Callable) -> None:
        raise NotImplementedError

    async def send_json(self, send: Callable, status: int, payload: bytes,
                        extra: HeaderList) -> None:
        """The answer, with the app's security headers and `extra` (CORS, Retry-After)."""
        response_headers = [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *self._security]
        response_headers += [(name.lower().encode(), value.encode("latin-1"))
                             for name, value in extra]
        await send({"type": "http.response.start", "status": status,
                    "headers": response_headers})
        await send({"type": "http.response.body", "body": payload, "more_body": False})


def hooks_known(app: Quart, blueprint: str,
                expected: dict[str | None, list[Callable]]) -> bool:
    """Whether Quart would run exactly the `expected` after_request hooks on a route of
    `blueprint`, and no other hook, preprocessor, teardown or request signal."""
    names = (None, blueprint)
    hooks = {name: list(funcs) for name, funcs in app.after_request_funcs.items()
             if funcs and name in names}
    others = [funcs for registry in (app.before_request_funcs, app.url_value_preprocessors,
                                     app.teardown_request_funcs)
              for name, funcs in registry.items() if funcs and name in names]
    signals = [signal for signal in (request_started, request_finished, got_request_exception)
               if signal.receivers]
    return (hooks == expected and not others and not signals
            and not app.teardown_appcontext_funcs)


async def read_body(app: Quart, headers: RequestHeaders, receive: Callable,
                    body: Body) -> bytes:
    """The whole body, or HandToQuart (with what was read in `body`) when it is larger than
    the app takes or slower than it waits for: Quart answers those (413, 408)."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    if headers.content_length is not None and headers.content_length > limit:
        raise HandToQuart
    try:
        async with asyncio.timeout(app.config["BODY_TIMEOUT"]):
            while not body.complete:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Disconnected
                body.add(message.get("body", b""), message.get("more_body", False))
                if body.size > limit:
                    raise HandToQuart
    except TimeoutError:  # Quart waits out the rest and answers 408
        raise HandToQuart from None
    return body.data()


def own_origin(scope: dict, headers: RequestHeaders) -> str:
    """The app's own origin, as `site_access.own_origin` reads it from a Quart request."""
    scheme = scope["scheme"]
    return f"{scheme}://{get_host(scheme, headers.get(b'host'), scope.get('server'))}".lower()


def client_ip(rt: WebRuntime, scope: dict, headers: RequestHeaders) -> str | None:
    """As `site_access.client_ip`: forwarding headers count only from trusted proxies."""
    peer = (scope.get("client") or ["<local>"])[0]
    proxies = rt.settings.trusted_proxy_networks
    if not proxies:
        return peer
    return client_address(peer, headers.werkzeug(), proxies)


def error_answer(error: Exception) -> tuple[int, dict, HeaderList]:
    """Status, JSON and extra headers of `error`, as web/errors.py's handlers answer it (call
    it in the `except` block: an unexpected error is logged with its traceback)."""
    if isinstance(error, OvationError):
        retry_after = getattr(error, "retry_after_s", None)
        extra = [("Retry-After", str(retry_after))] if retry_after is not None else []
        return error.status, error_body(error.code, error.message, error.details or None), extra
    if isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        log.warning("Redis is not reachable: %s", error)
        return 503, error_body(ServiceUnavailable.code, REDIS_UNAVAILABLE), []
    if isinstance(error, UnicodeDecodeError):
        return 400, error_body("invalid_json", "The request body is not UTF-8."), []
    log.exception("unhandled error: %s", error)
    return 500, error_body("internal_error", INTERNAL_ERROR), []


def json_payload(body: dict) -> bytes:
    """Compact, sorted keys and a final newline, as the app's JSON provider writes it."""
    return (json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n").encode()


class RequestHeaders:
    """The few request headers a fast path reads, from the ASGI scope's list."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self.content_type = b""
        self.content_length: int | None = None
        self._seen: dict[bytes, str] = {}
        for name, value in raw:
            if name == b"content-type" and name not in self._seen:
                # The media type alone, as Quart's `is_json` compares it; the first header,
                # as werkzeug's `get` reads it.
                self.content_type = value.split(b";", 1)[0].strip().lower()
                self._seen[name] = value.decode("latin-1")
            elif name == b"content-length":
                self.content_length = int(value) if value.isdigit() else None
            elif name in (b"origin", b"host") and name not in self._seen:
                self._seen[name] = value.decode("latin-1")  # the first, as werkzeug's get

    def get(self, name: bytes) -> str | None:
        return self._seen.get(name)

    def werkzeug(self) -> Headers:
        """All headers, as Quart builds them (for the forwarding headers of a proxy)."""
        headers = Headers()
        for name, value in self._raw:
            headers.add(name.decode("latin-1").title(), value.decode("latin-1"))
        return headers


class Body:
    """The request body as read so far, and how to hand it to Quart."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False

    def add(self, chunk: bytes, more: bool) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk)
        self.complete = not more

    def data(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)

    def replay(self, receive: Callable) -> Callable:
        """`receive` for Quart: first what was read, then the rest of the client's stream."""
        if not self.chunks:
            return receive
        first: list[dict[str, Any]] = [{"type": "http.request", "body": self.data(),
                                        "more_body": not self.complete}]

        async def replayed() -> dict[str, Any]:
            return first.pop() if first else await receive()

        return replayed
