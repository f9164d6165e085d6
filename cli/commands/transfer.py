"""`platformctl export` and `platformctl import`: comments and totals in and out."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import typer

from cli.commands.backup import progress_bar
from cli.context import cli_errors, console, state


class ImportFormat(enum.StrEnum):
    auto = "auto"
    json = "json"
    disqus = "disqus"
    wordpress = "wordpress"
    isso = "isso"


@cli_errors
def export(
    to: Path = typer.Option(None, "--to", help="Write to this file \\[default: standard "
                            "output].", show_default=False, dir_okay=False),
    site: str = typer.Option(None, "--site", help="Only this site \\[default: every site].",
                             show_default=False),
) -> None:
    """Export sites, pages, counter totals and comments as JSON (what `import` reads back)."""
    import os

    from appliance.connections import open_sql
    from appliance.operations.transfer import export_document

    database = open_sql(state.settings)
    if to is None:
        typer.echo(json.dumps(export_document(database, site), ensure_ascii=False, indent=1))
        return
    with progress_bar("exporting", "comments") as update:
        document = export_document(database, site, update)
    # Private fields (e-mail addresses) inside: readable by the owner only.
    fd = os.open(to, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, ensure_ascii=False, indent=1)
    comments = sum(len(page["comments"]) for entry in document["sites"]
                   for page in entry["pages"])
    console.print(f"Exported {len(document['sites'])} site(s) and {comments} comment(s) to "
                  f"{to}.", highlight=False)


@cli_errors
def import_comments(
    file: Path = typer.Argument(..., help="The export to read.", exists=True, dir_okay=False,
                                resolve_path=True),
    format_name: ImportFormat = typer.Option(ImportFormat.auto, "--format", help="The file's "
                                             "format; auto tells them apart by content."),
    site: str = typer.Option(None, "--site", help="The Ovation site the comments belong to "
                             "(required except for Ovation JSON, which names its sites).",
                             show_default=False),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read and check everything, write "
                                 "nothing, and print what would be imported."),
) -> None:
    """Import comments from Ovation JSON, Disqus XML, WordPress WXR or an Isso database.

    All or nothing: a malformed file imports nothing. Importing the same file again adds
    nothing.
    """
    from appliance.connections import open_sql
    from appliance.operations.importers import detect_format, parse
    from appliance.operations.transfer import import_batch

    settings = state.settings
    chosen = detect_format(file) if format_name is ImportFormat.auto else format_name.value
    batch = parse(file, chosen, site)
    database = open_sql(settings)
    with progress_bar("importing", "comments") as update:
        summary = import_batch(settings, database, batch, dry_run, update)
    verb = "Would import" if dry_run else "Imported"
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(summary.imported.items()))
    console.print(f"{verb} {summary.imported_total} comment(s) from {chosen} "
                  f"({statuses or 'none new'}) on {summary.pages} page(s); "
                  f"{summary.already_present} already present"
                  + (f"; sites created: {', '.join(summary.sites_created)}"
                     if summary.sites_created else "")
                  + (f"; {summary.counters_imported} counter total(s)"
                     if summary.counters_imported else "") + ".",
                  highlight=False, soft_wrap=True)
    for reason in summary.skipped:
        console.print(f"skipped: {reason}", highlight=False, soft_wrap=True, markup=False)
