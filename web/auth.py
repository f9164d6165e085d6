"""Bearer-token authentication for the admin API (tokens from `platformctl token create`).

`@token_required("admin")` goes right under the route decorator, so a request without a valid
token is refused (401) before its body is even validated, and a token lacking the scope, or
bound to another site than the URL's `site`, gets 403. The token's record is in `g.admin_token`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from quart import g, request

from appliance.errors import Unauthorized
from appliance.services import tokens
from appliance.storage.token_store import TokenRecord
from web.routes import runtime
from web.routes.site_access import rate_limit

F = TypeVar("F", bound=Callable[..., Any])
SECURITY_SCHEME_NAME = "bearer"
# For QuartSchema(security_schemes=...) and @security_scheme(...): declared in /openapi.json.
SECURITY_SCHEMES = {SECURITY_SCHEME_NAME: {
    "type": "http", "scheme": "bearer", "bearer_format": "ovt_... (platformctl token create)",
}}
BEARER_SECURITY = [{SECURITY_SCHEME_NAME: []}]
WWW_AUTHENTICATE = 'Bearer realm="ovation admin"'


def bearer_token() -> str | None:
    """The token of `Authorization: Bearer TOKEN`; None when there is no Authorization header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the admin token as `Authorization: Bearer TOKEN`.")
    return token.strip()


async def require_token(scope: str, site: str | None = None) -> TokenRecord:
    """The request's token, if it holds `scope` and may act on `site` (blocking SQL off-loop)."""
    rt = runtime()
    return await rt.sql.run(tokens.authenticate, rt.database, bearer_token(), scope, site)


def token_required(scope: str) -> Callable[[F], F]:
    """Route decorator: authenticate before anything else; the URL's `site` binds the check."""
    if scope not in tokens.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def decorator(view: F) -> F:
        @functools.wraps(view)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            # Charged before the token is checked, so guessing tokens is limited too.
            await rate_limit("admin", kwargs.get("site") or "")
            g.admin_token = await require_token(scope, kwargs.get("site"))
            return await view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator
