"""``onmodel cost``: what was spent, by model for a session, or across everything by
character, session or month; every total is added up by the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from onmodel.cli.context import open_studio
from onmodel.cli.output import console, print_json

if TYPE_CHECKING:
    from onmodel.studio.costs import Breakdown, CostLine, CostReport


def cost(
    session: Annotated[
        str | None,
        typer.Argument(help="Slug or id (default: the current session; with --by: everything)."),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Total everything (or SESSION) by character, session or month; a "
            "character's anchor counts under it.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Estimated spend: a session's by model with its character's anchor beside it, or
    totals by character, session or month; unknown prices are shown as unknown."""
    studio = open_studio()
    if by is not None:
        breakdown = studio.cost_breakdown(_breakdown(by), session)
        if json_out:
            print_json(breakdown.to_dict())
            return
        console.print(f"[bold]{breakdown.scope}[/bold] by {breakdown.by}:")
        for line in breakdown.lines:
            console.print(f"  {_line(line)}", markup=False)
        console.print(f"[bold]{_line(breakdown.total)}[/bold]")
        return
    report = studio.cost(session)
    if json_out:
        print_json(report.to_dict())
        return
    console.print(f"[bold]{report.scope}[/bold]: ${report.total} over {_counted(report)}")
    for model, amount in sorted(report.by_model.items()):
        console.print(f"  {model}: ${amount}", markup=False)
    if report.unknown:
        console.print(f"  [yellow]{report.unknown} image(s) of unknown cost (not counted)[/yellow]")
    if report.anchor is not None and report.anchor.images:
        console.print(
            f"  + {_line(report.anchor)} (in no session); with it: "
            f"${report.total + report.anchor.total}",
            markup=False,
        )


def _breakdown(by: str) -> Breakdown:
    from onmodel.errors import UsageError
    from onmodel.studio.costs import BREAKDOWNS

    for choice in BREAKDOWNS:
        if by == choice:
            return choice
    raise UsageError(f"--by takes {', '.join(BREAKDOWNS)}, not {by!r}")


def _line(line: CostLine) -> str:
    unknown = f", {line.unknown} of unknown cost (not counted)" if line.unknown else ""
    return f"{line.label}: ${line.total} over {_counted(line)}{unknown}"


def _counted(line: CostLine | CostReport) -> str:
    """ "12 images", or "12 images and 3 paid checks" when a vision judge was paid for."""
    images = f"{line.images} image{'' if line.images == 1 else 's'}"
    if not line.checks:
        return images
    return f"{images} and {line.checks} paid check{'' if line.checks == 1 else 's'}"
