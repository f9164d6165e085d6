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

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from pydantic import TypeAdapter, ValidationError
from quart import Quart
from quart.signals import got_request_exception, request_finished, request_started
from werkzeug.datastructures import Headers
from werkzeug.sansio.utils import get_host

from appliance.errors import OvationError, ServiceUnavailable
from appliance.services.client_address import client_address
from web.errors import INTERNAL_ERROR, REDIS_UNAVAILABLE, error_body
from web.routes.lean_schema import plain_text_from_a_page
from web.routes.site_access import charge_for, check_origin, cors_headers
from web.runtime import WebRuntime
from web.schemas import InteractionRequest

log = logging.getLogger("ovation.web")
ROUTE = re.compile(r"^/api/v1/sites/([^/]+)/interactions$")
JSON_TYPES = (b"application/json",)
ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]
_INTERACTION = TypeAdapter(InteractionRequest)


class HandToQuart(Exception):
    """The request is not a well-formed interaction: Quart's route answers it."""


class FastInteractions:
    """ASGI middleware in front of the Quart app (`app.asgi_app`), installed by `create_app`
    with the app's security headers and the after_request hooks it reproduces."""

    def __init__(self, app: Quart, inner: ASGIApp, security_headers: list[tuple[str, str]],
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
            match = ROUTE.match(scope["path"])
        if match is None:
            return await self._inner(scope, receive, send)
        headers = _RequestHeaders(scope["headers"])
        body = _Body()
        try:
            if not self.enabled:
                raise HandToQuart
            data = await self._read(headers, receive, body)
        except HandToQuart:
            return await self._inner(scope, body.replay(receive), send)
        except _Disconnected:
            return None
        await self._answer(runtime, scope, headers, match.group(1), data, send)

    @property
    def enabled(self) -> bool:
        """Whether this layer answers interactions: only if Quart would run no hook on the
        route but those it reproduces (the app's security headers, the blueprint's CORS).
        Looked at once, at the first request, when the app's hooks are all registered: a hook
        it does not know turns it off, so that it never answers differently from the route."""
        if self._known is None:
            app = self._app
            hooks = {name: list(funcs) for name, funcs in app.after_request_funcs.items()
                     if funcs and name in (None, "public")}
            others = [funcs for registry in (app.before_request_funcs,
                                             app.url_value_preprocessors,
                                             app.teardown_request_funcs)
                      for name, funcs in registry.items() if funcs and name in (None, "public")]
            signals = [signal for signal in (request_started, request_finished,
                                             got_request_exception) if signal.receivers]
            self._known = (hooks == self._expected_hooks and not others and not signals
                           and not app.teardown_appcontext_funcs)
            if not self._known:
                log.warning("interactions take Quart's route: the app has request hooks the "
                            "fast path does not reproduce")
        return self._known

    async def _read(self, headers: _RequestHeaders, receive: Callable,
                    body: _Body) -> InteractionRequest:
        """The validated body, or HandToQuart (with what was read in `body`)."""
        limit = self._app.config["MAX_CONTENT_LENGTH"]
        declared = headers.content_type in JSON_TYPES or plain_text_from_a_page(
            headers.content_type.decode("latin-1"), headers.get(b"origin"))
        if not declared or (
                headers.content_length is not None and headers.content_length > limit):
            raise HandToQuart
        try:
            async with asyncio.timeout(self._app.config["BODY_TIMEOUT"]):
                while not body.complete:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Disconnected
                    body.add(message.get("body", b""), message.get("more_body", False))
                    if body.size > limit:
                        raise HandToQuart
        except TimeoutError:  # Quart waits out the rest and answers 408
            raise HandToQuart from None
        try:
            return _INTERACTION.validate_json(body.data())
        except ValidationError:  # Quart's route gives the error its code and message
            raise HandToQuart from None

    async def _answer(self, rt: WebRuntime, scope: dict, headers: _RequestHeaders, site: str,
                      data: InteractionRequest, send: Callable) -> None:
        origin = headers.get(b"origin")
        scheme = scope["scheme"]  # the app's own origin, as `site_access.own_origin`
        own = f"{scheme}://{get_host(scheme, headers.get(b'host'), scope.get('server'))}".lower()
        extra: list[tuple[str, str]] = []
        try:
            record = await rt.sites.get(site)
            check_origin(record, origin, own)
            charge = await charge_for(rt, "interactions", record, data.visitor,
                                      self._client(rt, scope, headers))
            outcome = await rt.counters.record(record, data.path, data.reaction, data.action,
                                               data.amount, data.visitor, data.choice,
                                               data.score, limit=charge)
            page = outcome.page
            status, body = 200, {"applied": outcome.applied, "path": page.path,
                                 "stale": page.stale, "totals": page.totals,
                                 "visitor": page.visitor}
        except OvationError as error:  # as web/errors.py's handler answers it
            status, body = error.status, error_body(error.code, error.message,
                                                    error.details or None)
            retry_after = getattr(error, "retry_after_s", None)
            if retry_after is not None:
                extra.append(("Retry-After", str(retry_after)))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            log.warning("Redis is not reachable: %s", error)
            status, body = 503, error_body(ServiceUnavailable.code, REDIS_UNAVAILABLE)
        except Exception as error:
            log.exception("unhandled error: %s", error)
            status, body = 500, error_body("internal_error", INTERNAL_ERROR)
        extra += await cors_headers(rt, site, origin, own)
        await self._send(send, status, body, extra)

    @staticmethod
    def _client(rt: WebRuntime, scope: dict, headers: _RequestHeaders) -> str | None:
        """As `site_access.client_ip`: forwarding headers count only from trusted proxies."""
        peer = (scope.get("client") or ["<local>"])[0]
        proxies = rt.settings.trusted_proxy_networks
        if not proxies:
            return peer
        return client_address(peer, headers.werkzeug(), proxies)

    async def _send(self, send: Callable, status: int, body: dict,
                    extra: list[tuple[str, str]]) -> None:
        # Compact, sorted keys and a final newline, as the app's JSON provider writes it.
        payload = (json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n").encode()
        response_headers = [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *self._security]
        response_headers += [(name.lower().encode(), value.encode("latin-1"))
                             for name, value in extra]
        await send({"type": "http.response.start", "status": status,
                    "headers": response_headers})
        await send({"type": "http.response.body", "body": payload, "more_body": False})


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


class _RequestHeaders:
    """The few request headers the fast path reads, from the ASGI scope's list."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self.content_type = b""
        self.content_length: int | None = None
        self._seen: dict[bytes, str] = {}
        for name, value in raw:
            if name == b"content-type":
                # The media type alone, as Quart's `is_json` compares it.
                self.content_type = value.split(b";", 1)[0].strip().lower()
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


class _Body:
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
