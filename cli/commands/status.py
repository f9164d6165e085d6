"""`platformctl status`: every service (state, pid, uptime, memory, restarts) and the
appliance's health, from systemd or from a running `platformctl up`."""

from __future__ import annotations

import json

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from appliance.operations.health import Health
from appliance.operations.services import ServiceState
from cli.context import cli_errors, console, err_console, state

EXIT_SOMETHING_DOWN = 3


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def human_bytes(count: int | None) -> str:
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def where_from(states: list[ServiceState]) -> str:
    sources = {service.source for service in states}
    if "systemd" in sources:
        return "systemd"
    if "up" in sources:
        return "platformctl up"
    return "nothing"


def render_status(states: list[ServiceState], health: Health) -> Group:
    """The status screen as rich renderables: a pure function of a snapshot, testable as text."""
    services = Table("service", "state", "pid", "uptime", "memory", "restarts",
                     title=f"Ovation services (run by {where_from(states)})", title_justify="left")
    for service in states:
        style = "green" if service.running else "red"
        services.add_row(service.name, Text(service.state, style=style),
                         str(service.pid or "-"), human_duration(service.uptime_s),
                         human_bytes(service.memory_bytes),
                         "-" if service.restarts is None else str(service.restarts))
    checks = Table("check", "value", title="Appliance health", title_justify="left")
    checks.add_row("version", health.version)
    checks.add_row("redis", _ok(health.redis_ok, health.redis_error))
    checks.add_row("database", _ok(health.database_ok, health.database_error))
    if health.pending_migrations:
        checks.add_row("migrations", Text(f"{health.pending_migrations} pending", style="red"))
    if health.redis_ok:
        age = ("never" if health.last_flush_age_s is None
               else f"{human_duration(health.last_flush_age_s)} ago")
        checks.add_row("last flush", age + (f" (last error: {health.last_flush_error})"
                                            if health.last_flush_error else ""))
        checks.add_row("pending counters", str(health.pending_counters))
        for name, length in health.stream_lengths.items():
            unacked = health.stream_unacknowledged.get(name, 0)
            checks.add_row(f"stream {name}", f"{length} kept, {unacked} unacknowledged")
        checks.add_row("notification deliveries", f"{health.deliveries_queued or 0} queued "
                       "(due, retrying or in flight)")
        dead = sum(health.dead_letters.values())
        checks.add_row("dead letters", Text(
            str(dead) + (" (" + ", ".join(f"{name}: {count}" for name, count
                                          in health.dead_letters.items() if count) + ")"
                         if dead else ""), style="yellow" if dead else ""))
    return Group(services, checks)


def _ok(ok: bool, error: str) -> Text:
    return Text("reachable", style="green") if ok else Text(f"DOWN: {error}", style="red")


def status_problems(states: list[ServiceState], health: Health) -> list[str]:
    down = [service.name for service in states if not service.running]
    problems = list(health.problems)
    if down:
        problems.insert(0, f"not running: {', '.join(down)}")
    return problems


@cli_errors
def status(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object for scripts."),
) -> None:
    """Show every service (state, pid, uptime, memory, restarts) and the appliance's health.

    Exits with 3 when a service or Redis or the database is down. Reads systemd when it runs,
    else the `platformctl up` running in the data directory.
    """
    from appliance.operations.health import appliance_health
    from appliance.operations.services import service_states

    settings = state.settings
    states = service_states(settings)
    health = appliance_health(settings)
    problems = status_problems(states, health)
    if as_json:
        typer.echo(json.dumps({"run_by": where_from(states),
                               "services": [service.as_dict() for service in states],
                               "health": health.as_dict(), "problems": problems,
                               "ok": not problems}, indent=2))
    else:
        console.print(render_status(states, health))
        if where_from(states) == "nothing":
            err_console.print("Nothing runs Ovation here: systemd is not running it and no "
                              f"`platformctl up` runs in {settings.data_dir}. Start it with "
                              "`platformctl start` (systemd) or `platformctl up`.",
                              soft_wrap=True, highlight=False)
        elif problems:
            err_console.print("Problems: " + "; ".join(problems), soft_wrap=True,
                              highlight=False, markup=False)
    if problems:
        raise typer.Exit(EXIT_SOMETHING_DOWN)
