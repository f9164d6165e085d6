"""`platformctl install` and `uninstall`: the systemd units of a system install."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.context import cli_errors, console, state

NO_SYSTEMD_FOR_INSTALL = (
    "systemd is not running on this host (it is not PID 1), so there are no units to install: "
    "`platformctl install --no-units` writes the configuration and data directory and migrates; "
    "then run everything in the foreground with `platformctl up`.")


def _run_plan(plan, dry_run: bool) -> None:
    if not plan.steps:
        console.print("Nothing to do: everything is in place already.")
        return
    for step in plan.steps:
        if dry_run:
            console.print(f"would {step.description}", highlight=False, markup=False,
                          soft_wrap=True)
            continue
        console.print(f"==> {step.description}", highlight=False, markup=False, soft_wrap=True)
        step.action()


@cli_errors
def install(
    workers: int = typer.Option(None, "--workers", min=1, max=64, help="Hypercorn worker "
                                "processes of ovation-web \\[default: kept, else 1].",
                                show_default=False),
    bind: str = typer.Option(None, "--bind", metavar="ADDR:PORT", help="Where ovation-web "
                             "listens \\[default: kept, else 127.0.0.1:8700].",
                             show_default=False),
    database: str = typer.Option(None, "--database", metavar="URL", help="postgresql://... or "
                                 "sqlite:///PATH \\[env: PLATFORMCTL_DATABASE_URL, which "
                                 "keeps a password off the command line; default: kept, else "
                                 "SQLite in the data directory].", show_default=False,
                                 envvar="PLATFORMCTL_DATABASE_URL"),
    redis: str = typer.Option(None, "--redis", metavar="URL|owned", help="An existing Redis, "
                              "or 'owned' for ovation-redis.service \\[default: kept, else "
                              "owned].", show_default=False),
    venv: Path = typer.Option(None, "--venv", help="Virtual environment the units run "
                              "\\[default: the one running this platformctl].",
                              show_default=False, file_okay=False),
    root: Path = typer.Option(None, "--root", help="Write the files under this directory "
                              "instead of /, and run no systemctl (for packaging and tests).",
                              show_default=False, file_okay=False, resolve_path=True),
    no_start: bool = typer.Option(False, "--no-start", help="Enable the units but do not "
                                  "(re)start them."),
    no_units: bool = typer.Option(False, "--no-units", help="For a host without systemd: "
                                  "write the env file and data directory and migrate, but "
                                  "install no units and start nothing (run `platformctl up`)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the steps; change nothing."),
) -> None:
    """Install Ovation as systemd services: env file, data directory, units, migrations, start.

    Writes /etc/ovation/ovation.env (0640 root:ovation), /var/lib/ovation and the units
    ovation-{redis,flusher,listener,notifier,web}.service plus ovation.target, then migrates the
    database and enables and starts the target. Options not given keep what the env file says.
    Running it again changes only what differs. Where systemd does not run, --no-units does all
    but the units, for `platformctl up` as the service user.
    """
    from appliance.operations.host import require_root, require_systemd
    from appliance.operations.install import (
        DEFAULT_ENV_FILE,
        SERVICE_USER,
        InstallOptions,
        plan_install,
    )

    if root is None and not no_units:
        # Checked on a dry run too: it shows what the real run would do on this host.
        require_systemd(NO_SYSTEMD_FOR_INSTALL)
    if root is None and not dry_run:
        require_root("platformctl install")
    data_dir = state.overrides.get("data_dir")
    plan = plan_install(InstallOptions(workers=workers, bind=bind, database_url=database,
                                       redis_url=redis, data_dir=data_dir, venv=venv, root=root,
                                       start=not no_start, units=not no_units,
                                       dry_run=dry_run))
    _run_plan(plan, dry_run)
    if dry_run or not plan.steps:
        return
    where = f" under {root}" if root else ""
    if no_units:
        console.print(f"Ovation is configured{where}, without systemd units. Run it in the "
                      f"foreground as {SERVICE_USER}: runuser -u {SERVICE_USER} -- env "
                      f"OVATION_ENV_FILE={DEFAULT_ENV_FILE} {plan.layout.platformctl} up",
                      highlight=False, markup=False, soft_wrap=True)
    else:
        console.print(f"Ovation is installed{where}. `platformctl status` shows how it runs.")


@cli_errors
def uninstall(
    purge: bool = typer.Option(False, "--purge", help="Also delete /etc/ovation and the data "
                               "directory (database, Redis files): everything is lost."),
    root: Path = typer.Option(None, "--root", help="Act on files under this directory "
                              "instead of /, and run no systemctl.", show_default=False,
                              file_okay=False, resolve_path=True),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the steps; change nothing."),
) -> None:
    """Stop and remove the systemd units; keep the configuration and data unless --purge."""
    from appliance.operations.host import require_root, require_systemd
    from appliance.operations.install import plan_uninstall

    if root is None and not dry_run:
        require_systemd()
        require_root("platformctl uninstall")
    _run_plan(plan_uninstall(purge, root), dry_run)
