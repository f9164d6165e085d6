"""ASGI entry point for Hypercorn workers: settings come from the environment."""

from __future__ import annotations

from appliance.logging_setup import configure_logging
from appliance.settings import load_settings
from web.app import create_app
from web.ws_compression import decline_permessage_deflate

_settings = load_settings().settings
configure_logging(_settings.log_level, "web")
decline_permessage_deflate()  # memory per live connection: see web/ws_compression.py
app = create_app(_settings)
