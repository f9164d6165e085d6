"""`platformctl install` and `uninstall`: the systemd units of a system install."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.context import cli_errors, console, state


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
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the steps; change nothing."),
) -> None:
    """Install Ovation as systemd services: env file, data directory, units, migrations, start.

    Writes /etc/ovation/ovation.env (0640 root:ovation), /var/lib/ovation and the units
    ovation-{redis,flusher,listener,notifier,web}.service plus ovation.target, then migrates the
    database and enables and starts the target. Options not given keep what the env file says.
    Running it again changes only what differs.
    """
    from appliance.operations.host import require_root, require_systemd
    from appliance.operations.install import InstallOptions, plan_install

    if root is None and not dry_run:
        require_systemd()
        require_root("platformctl install")
    data_dir = state.overrides.get("data_dir")
    plan = plan_install(InstallOptions(workers=workers, bind=bind, database_url=database,
                                       redis_url=redis, data_dir=data_dir, venv=venv, root=root,
                                       start=not no_start, dry_run=dry_run))
    _run_plan(plan, dry_run)
    if not dry_run and plan.steps:
        where = f" under {root}" if root else ""
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
