"""`platformctl start|stop|restart [SERVICE]` and `logs`: drive the installed units."""

from __future__ import annotations

import enum
import os

import typer

from cli.context import cli_errors, console


class Service(enum.StrEnum):
    web = "web"
    flusher = "flusher"
    listener = "listener"
    notifier = "notifier"
    redis = "redis"


def _units(service: Service | None) -> list[str]:
    from appliance.operations.services import TARGET, unit_name

    return [unit_name(service.value)] if service else [TARGET]


def _systemctl_verb(verb: str, service: Service | None) -> None:
    from appliance.operations.host import require_systemd, systemctl

    require_systemd()
    units = _units(service)
    systemctl(verb, *units)
    done = {"start": "started", "stop": "stopped", "restart": "restarted"}[verb]
    console.print(f"{done} {' '.join(units)}", highlight=False)


_SERVICE_HELP = "One service (web, flusher, listener, notifier, redis); default: all of them."


@cli_errors
def start(service: Service = typer.Argument(None, help=_SERVICE_HELP, show_default=False)) \
        -> None:
    """Start Ovation's systemd services (the whole ovation.target, or one service)."""
    _systemctl_verb("start", service)


@cli_errors
def stop(service: Service = typer.Argument(None, help=_SERVICE_HELP, show_default=False)) \
        -> None:
    """Stop Ovation's systemd services; the flusher flushes once more before it exits."""
    _systemctl_verb("stop", service)


@cli_errors
def restart(service: Service = typer.Argument(None, help=_SERVICE_HELP, show_default=False)) \
        -> None:
    """Restart Ovation's systemd services (nothing is lost: see docs/operations.md)."""
    _systemctl_verb("restart", service)


@cli_errors
def logs(
    service: Service = typer.Argument(None, help=_SERVICE_HELP, show_default=False),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    since: str = typer.Option(None, "--since", help="Start at this time, in journalctl's "
                              "words: '1 hour ago', 'today', '2026-01-31 12:00'.",
                              show_default=False),
    lines: int = typer.Option(None, "--lines", "-n", min=0, help="Show only the last N lines.",
                              show_default=False),
) -> None:
    """Print the services' logs from the systemd journal (journalctl)."""
    import shutil

    from appliance.operations.host import require_systemd
    from appliance.operations.services import service_names, unit_name
    from cli.context import state

    require_systemd()
    if not shutil.which("journalctl"):
        from appliance.errors import OperationFailed

        raise OperationFailed("journalctl is not installed.")
    names = [service.value] if service else service_names(state.settings)
    argv = journal_command([unit_name(name) for name in names], follow, since, lines)
    os.execvp(argv[0], argv)  # the journal's own pager-less output, and Ctrl-C, as is


def journal_command(units: list[str], follow: bool = False, since: str | None = None,
                    lines: int | None = None) -> list[str]:
    """The journalctl command line `logs` hands over to."""
    argv = ["journalctl", "--no-pager", "--output=short-iso"]
    for unit in units:
        argv += ["-u", unit]
    if follow:
        argv.append("--follow")
    if since:
        argv += ["--since", since]
    if lines is not None:
        argv += ["--lines", str(lines)]
    return argv
