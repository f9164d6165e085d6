"""The app factory. `create_app` does no I/O: connections open when serving starts."""

from __future__ import annotations

import logging
from typing import Any

from quart import Quart
from quart.wrappers import Request
from quart_schema import Info, QuartSchema, Tag
from quart_schema.openapi import OpenAPIProvider
from werkzeug.exceptions import BadRequest

from appliance import __version__
from appliance.plugin_registry import ReactionRegistry
from appliance.settings import Settings
from web.auth import SECURITY_SCHEMES
from web.errors import register_error_handlers
from web.routes.admin import admin
from web.routes.admin_comments import admin_comments
from web.routes.admin_privacy import admin_privacy
from web.routes.comments import comments
from web.routes.fast_comments import FastComments
from web.routes.fast_interactions import FastInteractions
from web.routes.health import health
from web.routes.live import live
from web.routes.notifications import notifications
from web.routes.pages import pages
from web.routes.public import public
from web.routes.site_access import add_cors_headers
from web.runtime import WebRuntime

MAX_BODY_BYTES = 64 * 1024
# Swagger UI sets inline style attributes and data: images; no page of ours runs inline script.
OWN_PAGES_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                 "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                 "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

SECURITY_HEADERS = [("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "strict-origin-when-cross-origin")]

log = logging.getLogger("ovation.web")


class OvationRequest(Request):
    async def get_json(self, force: bool = False, silent: bool = False,
                       cache: bool = True) -> Any:
        """JSON nested deeper than the parser's recursion limit is bad JSON (400), not a 500."""
        try:
            return await super().get_json(force, silent, cache)
        except RecursionError:
            if silent:
                return None
            raise BadRequest("The JSON is nested too deeply.") from None


class OvationOpenAPI(OpenAPIProvider):
    _built: dict | None = None

    def schema(self) -> dict:
        """Built on the first request, then kept: the routes and models never change while
        the app runs, and building it costs about a second of CPU on a busy machine (every
        read of /openapi.json, e.g. the dashboard's version probe, used to pay it)."""
        if self._built is None:
            self._built = super().schema()
        return self._built

    def build_querystring_parameters(self, model):
        """quart-schema leaves every query parameter optional; mark the model's required ones."""
        parameters, definitions = super().build_querystring_parameters(model)
        required = set(model.model_json_schema().get("required", ()))
        for parameter in parameters:
            if parameter["name"] in required:
                parameter["required"] = True
        return parameters, definitions


def create_app(settings: Settings, registry: ReactionRegistry | None = None) -> Quart:
    """Build the web app for `settings`; plugins are discovered unless `registry` is given."""
    # No built-in /static route: it would shadow the pages blueprint's /static (web/static).
    app = Quart("ovation", static_folder=None)
    app.request_class = OvationRequest
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["QUART_SCHEMA_CONVERSION_PREFERENCE"] = "pydantic"
    QuartSchema(
        app,
        info=Info(title="Ovation", version=__version__,
                  description="Views, likes, applause and comments for any web page, live."),
        tags=[Tag(name="public", description="Called by the widget, from readers' browsers."),
              Tag(name="operations", description="Health and metrics for operators."),
              Tag(name="admin", description="For the blog's own tools: bearer token.")],
        # quart-schema's own doc pages load scripts from public CDNs: we serve /docs ourselves.
        swagger_ui_path=None, redoc_ui_path=None, scalar_ui_path=None,
        openapi_provider_class=OvationOpenAPI,
        security_schemes=SECURITY_SCHEMES,
    )
    register_error_handlers(app)
    for blueprint in (public, comments, admin, admin_comments, admin_privacy, live, health,
                      pages):
        app.register_blueprint(blueprint)
    app.register_blueprint(notifications)

    registry = registry or ReactionRegistry.discover(settings)
    runtime = WebRuntime(settings, registry)

    @app.before_serving
    async def open_runtime() -> None:
        await runtime.open()
        app.extensions["ovation"] = runtime
        app.add_background_task(runtime.relay_live_events, app.shutdown_event)
        app.add_background_task(runtime.live.run, app.shutdown_event)
        app.add_background_task(runtime.watched.run, app.shutdown_event)
        app.add_background_task(runtime.report_connections, app.shutdown_event)

    @app.after_serving
    async def close_runtime() -> None:
        await runtime.close()

    @app.after_request
    async def security_headers(response):
        for name, value in SECURITY_HEADERS:
            response.headers.setdefault(name, value)
        if response.mimetype == "text/html":
            # Ovation's own pages (landing, demo, API docs) load nothing from elsewhere.
            response.headers.setdefault("Content-Security-Policy", OWN_PAGES_CSP)
        return response

    # Interactions (every page view) and new comments skip Quart's per-request machinery
    # when well-formed; each reproduces exactly these hooks, and hands everything else on
    # (interactions, the most frequent, are looked at first).
    app.asgi_app = FastComments(app, app.asgi_app, SECURITY_HEADERS,
                                {None: [security_headers], "comments": [add_cors_headers]})
    app.asgi_app = FastInteractions(app, app.asgi_app, SECURITY_HEADERS,
                                    {None: [security_headers], "public": [add_cors_headers]})
    return app
