"""`platformctl dashboard`: the admin's live view of the appliance, full screen in a terminal."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator

import typer

from cli.context import cli_errors, console, fail, state

KEY_POLL_S = 0.1  # how often keys and the terminal's size are looked at between refreshes


@cli_errors
def dashboard(
    once: bool = typer.Option(False, "--once", help="Print one snapshot and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print one snapshot as JSON and exit "
                                 "(for scripts)."),
    interval: float = typer.Option(1.0, "--interval", min=0.2, max=60,
                                   help="Seconds between refreshes \\[default: 1].",
                                   show_default=False),
    url: str = typer.Option(None, "--url", help="Where the web process answers, for its "
                            "health check \\[default: where a `platformctl up` in the data "
                            "directory listens, else OVATION_PUBLIC_URL, else "
                            "http://OVATION_BIND].", show_default=False),
) -> None:
    """Show the appliance live, full screen: services, traffic, top pages, comments, queues.

    Reads the same settings as every other command, so it works against a local `up` or a
    remote appliance (OVATION_REDIS_URL, OVATION_DATABASE_URL, OVATION_PUBLIC_URL).
    Press q or Ctrl-C to quit.
    """
    from appliance.connections import open_redis
    from appliance.dashboard.collect import Collector, DashboardSources
    from appliance.dashboard.render import natural_height, render
    from appliance.storage.database import open_database

    if url is not None and not _is_http_url(url):
        fail(f"--url {url!r} is not an http:// or https:// URL.", 2)
    settings = state.settings
    # Redis must answer (every live figure is there); SQL may be down: that shows on screen.
    sources = DashboardSources(settings, open_redis(settings),
                               open_database(settings.effective_database_url), web_url=url or "")
    collector = Collector(sources)
    if as_json:
        typer.echo(collector.collect().to_json())
        return
    if once or not console.is_terminal:
        snapshot = collector.collect()
        # Into a file or a pipe there is no screen to fit: every panel is shown in full.
        height = (console.height if console.is_terminal
                  else natural_height(snapshot, console.width))
        console.print(render(snapshot, console.width, height, live=False), height=height)
        return
    run_live(collector.collect, render, interval)


def run_live(collect: Callable, render: Callable, interval_s: float) -> None:
    """Redraw every `interval_s` and on resize, until q, Ctrl-C, SIGTERM or SIGHUP."""
    from rich.live import Live

    snapshot, drawn_size, next_collect = None, None, 0.0
    with _quit_on_signals(), _keys() as read_key, Live(
            console=console, screen=True, auto_refresh=False, transient=True,
            redirect_stdout=False, redirect_stderr=False) as live:
        try:
            while True:
                now = time.monotonic()
                if now >= next_collect:
                    snapshot, next_collect = collect(), now + interval_s
                    drawn_size = None
                # Read afresh, after the collection (which may take a moment): the terminal may
                # have been resized meanwhile.
                size = (console.width, console.height)
                if size != drawn_size:
                    live.update(render(snapshot, *size), refresh=True)
                    drawn_size = size
                if read_key(KEY_POLL_S) in ("q", "Q"):
                    return
        except KeyboardInterrupt:  # Ctrl-C is a way to quit, not an error
            return


def _is_http_url(url: str) -> bool:
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


@contextlib.contextmanager
def _quit_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the terminal is restored on the way out."""
    def interrupt(_signum, _frame) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str]]:
    """Single keypresses without Enter (cbreak mode: Ctrl-C still interrupts), restored after."""
    if not sys.stdin.isatty():
        yield lambda timeout: (time.sleep(timeout), "")[1]
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        def read_key(timeout: float) -> str:
            ready, _, _ = select.select([fd], [], [], timeout)
            return os.read(fd, 32).decode(errors="replace")[:1] if ready else ""

        yield read_key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
