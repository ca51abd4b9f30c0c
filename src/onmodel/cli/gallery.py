"""``onmodel export`` and ``onmodel serve``: seeing a series as pictures rather than as text."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from onmodel.cli.context import open_studio
from onmodel.cli.output import console, err_console, print_json


class Only(StrEnum):
    """Mirrors ``onmodel.export.ExportFilter`` without importing it (keeps --help fast)."""

    ALL = "all"
    STARRED = "starred"


def export(
    session: Annotated[str | None, typer.Argument(help="Slug or id (default: current).")] = None,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Folder to write (new, empty, or an earlier export to replace; "
            "your own files in it are kept).",
        ),
    ] = None,
    make_zip: Annotated[
        bool,
        typer.Option(
            "--zip", help="Also write FOLDER.zip beside the folder (replaces only onmodel's own)."
        ),
    ] = False,
    only: Annotated[
        Only, typer.Option("--only", help="'starred': only starred images (and the anchor).")
    ] = Only.ALL,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Write a session as images, series.json and an index.html contact sheet that opens offline."""
    from onmodel.export import export_session

    studio = open_studio()
    chosen = studio.session(session)
    target = to if to is not None else Path(f"{chosen.slug}-export")
    result = export_session(studio, chosen, target, only=only.value, make_zip=make_zip)
    if json_out:
        print_json(result.to_dict())
        return
    failed = f", {result.failed} failed shot(s) listed" if result.failed else ""
    console.print(
        f"exported [bold]{chosen.slug}[/bold]: {len(result.files)} image file(s){failed} "
        f"to {result.directory}"
    )
    pages = f" (and {len(result.pages) - 1} more page(s))" if len(result.pages) > 1 else ""
    console.print(f"open: {result.index.as_uri()}{pages}")
    if result.zip_path is not None:
        console.print(f"zip: {result.zip_path}")
    if result.kept:
        console.print(f"kept your own files in the folder: {', '.join(result.kept)}", markup=False)


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; loopback unless --allow-remote.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8765,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a non-loopback --host: anyone who reaches it can browse and spend.",
        ),
    ] = False,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the UI in your web browser.")
    ] = False,
) -> None:
    """A local web UI: browse characters, sessions and lineage; star, rate, note; branch shots."""
    from onmodel.web.server import check_host, run

    check_host(host, allow_remote=allow_remote)  # refused before the database is even opened
    studio = open_studio()

    def ready(url: str) -> None:
        console.print(f"onmodel serving {studio.paths.home} at [bold]{url}[/bold] (Ctrl-C to stop)")
        if allow_remote:
            err_console.print("[yellow]warning:[/yellow] remote access is on; there is no login")
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    run(studio, host, port, allow_remote=allow_remote, on_ready=ready)
