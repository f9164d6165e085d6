"""`platformctl serve NAME`: run one Ovation process in the foreground (what systemd runs)."""

from __future__ import annotations

import enum

import typer

from appliance.logging_setup import configure_logging
from cli.context import cli_errors, state

WEBSOCKET_MAX_MESSAGE_BYTES = 64 * 1024


class ProcessName(enum.StrEnum):
    web = "web"
    flusher = "flusher"
    listener = "listener"
    notifier = "notifier"


@cli_errors
def serve(
    name: ProcessName = typer.Argument(..., help="Which process to run."),
    workers: int = typer.Option(None, "--workers", min=1, max=64,
                                help="web: Hypercorn worker processes \\[env: "
                                "OVATION_WEB_WORKERS].", show_default=False),
    bind: str = typer.Option(None, "--bind", help="web: HOST:PORT to listen on \\[env: "
                             "OVATION_BIND].", show_default=False),
) -> None:
    """Run one process (web, flusher, listener or notifier) until SIGTERM; stops warmly."""
    state.set(web_workers=workers, bind=bind)
    settings = state.settings
    configure_logging(settings.log_level, name.value)
    if name is ProcessName.web:
        _serve_web(settings)
    elif name is ProcessName.flusher:
        from appliance.jobs.flusher import run_flusher
        from appliance.services.ip_salts import SaltPolicy
        from appliance.storage.database import open_database
        from appliance.storage.redis_client import sync_redis

        # No reachability check: the flusher must start (and keep retrying) while SQL is down.
        run_flusher(sync_redis(settings), open_database(settings.effective_database_url),
                    settings.flush_interval_s, settings.flush_retry_max_s,
                    settings.feed_poll_interval_s, settings.max_path_length,
                    SaltPolicy.from_settings(settings))
    else:
        from appliance.storage.database import open_database
        from appliance.storage.redis_client import sync_redis
        from appliance.workers.listener import build_listener
        from appliance.workers.notifier import build_notifier

        client = sync_redis(settings)
        consumer = (build_listener(client, open_database(settings.effective_database_url),
                                   settings.comment_max_depth, settings.stream_trim_interval_s)
                    if name is ProcessName.listener else build_notifier(client, settings))
        consumer.install_signal_handlers()
        consumer.run()


def _serve_web(settings) -> None:
    import logging
    import os

    from hypercorn.config import Config
    from hypercorn.run import run

    from appliance.settings import env_var

    config = Config()
    config.application_path = "web.asgi:app"
    config.bind = [settings.bind]
    # One worker runs in this process; more are spawned by Hypercorn's master.
    config.workers = 0 if settings.web_workers == 1 else settings.web_workers
    config.websocket_max_message_size = WEBSOCKET_MAX_MESSAGE_BYTES
    config.graceful_timeout = 5
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # our log format, printed once
    # Workers load the app afresh and read settings from the environment.
    for field_name in type(settings).model_fields:
        value = getattr(settings, field_name)
        os.environ[env_var(field_name)] = str(value)
    run(config)
