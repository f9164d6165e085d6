"""Ovation's own pages: the demo page, the API docs (served locally, no CDN) and static files."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from quart import Blueprint, Response, abort, send_from_directory

from web.routes import runtime

pages = Blueprint("pages", __name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
SWAGGER_FILES = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                 "favicon-32x32.png", "favicon-16x16.png"}

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ovation API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script>
</body></html>"""


@pages.get("/")
async def demo_page() -> Response:
    """The demo page: the demo site's counters on a sample post, live."""
    html = (STATIC_DIR / "demo.html").read_text()
    html = html.replace("{{public_url}}", runtime().settings.effective_public_url)
    return Response(html, content_type="text/html; charset=utf-8")


@pages.get("/docs")
async def api_docs() -> Response:
    """Swagger UI for /openapi.json, with its assets served from the installed package."""
    return Response(DOCS_PAGE, content_type="text/html; charset=utf-8")


@pages.get("/docs/assets/<name>")
async def api_docs_asset(name: str):
    if name not in SWAGGER_FILES:
        abort(404)
    return await send_from_directory(SWAGGER_DIR, name)


@pages.get("/static/<path:name>")
async def static_file(name: str):
    return await send_from_directory(STATIC_DIR, name)
