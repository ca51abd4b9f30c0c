"""``onmodel db ...`` and ``onmodel templates ...``: the store's schema and the prompt templates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from onmodel.blobs import IN_USE_GRACE
from onmodel.cli.output import console, print_json

if TYPE_CHECKING:
    from onmodel.composer import Composer

MAX_GRACE_MINUTES = 60 * 24 * 365  # a year: longer would only ever keep everything

db_app = typer.Typer(help="The database: its schema and its health.", no_args_is_help=True)
templates_app = typer.Typer(help="Prompt and export templates.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (opening the database does this too)."""
    from onmodel.config import resolve_paths
    from onmodel.store.database import create_database_engine, schema_state, upgrade

    engine = create_database_engine(resolve_paths().database_url)
    before = schema_state(engine)
    after = upgrade(engine)
    if before.current == after.current:
        console.print(f"already at the newest schema ({after.current})")
    else:
        console.print(f"upgraded from {before.current or 'empty'} to {after.current}")


@db_app.command("current")
def db_current(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The database's schema revision and the newest one this onmodel knows."""
    from onmodel.config import resolve_paths
    from onmodel.store.database import create_database_engine, schema_state

    paths = resolve_paths()
    state = schema_state(create_database_engine(paths.database_url))
    if json_out:
        print_json(
            {
                "database": paths.database_url,
                "current": state.current,
                "head": state.head,
                "up_to_date": state.up_to_date,
            }
        )
        return
    flag = "(head)" if state.up_to_date else f"(head is {state.head}; run: onmodel db upgrade)"
    console.print(f"{state.current or 'empty'} {flag}")
    console.print(f"[dim]{paths.database_url}[/dim]")


@db_app.command("check")
def db_check(
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Mark stale pending rows interrupted; delete unreferenced and temp files.",
        ),
    ] = False,
    grace_minutes: Annotated[
        float,
        typer.Option(
            "--grace-minutes",
            min=0,
            max=MAX_GRACE_MINUTES,
            help="Files younger than this may be writes in progress and are kept.",
        ),
    ] = IN_USE_GRACE.total_seconds() / 60,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Only check that each image file exists (the store's listing); hash nothing.",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Verify every image file against its digest; find orphans and stale pending shots.

    Checks the blob store in use: the folder under the home, or the bucket of
    ONMODEL_BLOBS_URL (each object downloaded and hashed; --quick lists them only).
    Exits 0 when healthy (or everything found was fixed), 1 when problems remain.
    """
    from datetime import timedelta

    from onmodel.doctor import check_store
    from onmodel.studio import Studio

    with Studio.open() as studio:
        report = check_store(
            studio.engine,
            studio.blobs,
            studio.paths.home,
            fix=fix,
            grace=timedelta(minutes=grace_minutes),
            quick=quick,
        )
        location = studio.blobs.location
    if json_out:
        print_json(report.to_dict())
    else:
        for finding in report.findings:
            console.print(finding.line(), markup=False)
        checked = (
            f"{report.blobs_found} files found (--quick: not hashed)"
            if quick
            else f"{report.blobs_verified} files verified"
        )
        summary = (
            f"{checked}, {report.files_scanned} scanned in {location}, "
            f"{len(report.problems)} problem(s)"
        )
        if report.young_files_kept:
            summary += f"; {report.young_files_kept} recent file(s) kept (may be in use)"
        if report.problems and not fix:
            summary += "; run with --fix to repair what can be repaired"
        console.print(summary, markup=False)
    if not report.healthy:
        raise typer.Exit(1)


def _composer() -> Composer:
    from onmodel.composer import Composer
    from onmodel.config import resolve_paths

    return Composer(resolve_paths().templates)


@templates_app.command("list")
def templates_list(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Every template, and whether your folder overrides the packaged one."""
    found = _composer().list_templates()
    if json_out:
        print_json([{"name": t.name, "origin": t.origin, "path": str(t.path)} for t in found])
        return
    for info in found:
        console.print(f"{info.name}  [dim]{info.origin}[/dim]")


@templates_app.command("show")
def templates_show(
    name: Annotated[str, typer.Argument(help="e.g. prompts/shot.j2 or shot.")],
) -> None:
    """Print a template's source."""
    info = _composer().source(name)
    console.print(f"[dim]# {info.path} ({info.origin})[/dim]")
    print(info.path.read_text(encoding="utf-8"), end="")


@templates_app.command("path")
def templates_path() -> None:
    """Where templates are looked up: your folder first, then the packaged ones."""
    from onmodel.config import resolve_paths
    from onmodel.resources import templates_dir

    print(f"user: {resolve_paths().templates}")
    print(f"packaged: {templates_dir()}")
