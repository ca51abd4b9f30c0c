"""``onmodel batch ...``: run a shot list as one batch, and see where batches stand.

Heavy imports happen inside the commands so ``onmodel --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from onmodel.cli.context import open_studio
from onmodel.cli.output import Column, console, print_json, print_table, warn
from onmodel.cli.render import inline_fields

if TYPE_CHECKING:
    from onmodel.batch.progress import ProgressMode
    from onmodel.batch.runner import BatchPreview, BatchReport, ShotFailure
    from onmodel.batch.status import BatchStatus

app = typer.Typer(
    help="Shot lists: a whole series as one concurrent, resumable, budgeted batch.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SessionOption = Annotated[
    str | None,
    typer.Option("--session", "-s", help="Slug or id; overrides the list's session."),
]
STATE_STYLE = {
    "done": "green",
    "failed": "red",
    "interrupted": "yellow",
    "running": "cyan",
    "new": "dim",
    "retake": "dim",
    "not needed": "dim",
}


@app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="The shot list (YAML).")],
    session: SessionOption = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", help="Requests in flight at once (1-64).")
    ] = 4,
    rpm: Annotated[
        float | None, typer.Option("--rpm", help="At most this many requests start per minute.")
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option("--budget", help="USD this run may spend; stops before a shot could go over."),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Also re-make shots that failed before.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show the expanded shots and estimated cost; spend nothing."
        ),
    ] = False,
    progress: Annotated[
        str,
        typer.Option(help="auto (live on a terminal, lines otherwise), rich, plain or none."),
    ] = "auto",
    json_out: JsonOption = False,
) -> None:
    """Make every shot of FILE that is not made yet; safe to stop and run again."""
    from onmodel.batch import BatchInterrupted, BatchRunner, load_shot_list, make_progress
    from onmodel.batch.runner import BatchIncompleteError
    from onmodel.errors import UsageError

    if progress not in ("auto", "rich", "plain", "none"):
        raise UsageError(f"--progress must be auto, rich, plain or none, not {progress!r}")
    mode: ProgressMode = progress  # type: ignore[assignment]
    loaded = load_shot_list(file)  # a bad file fails before the database is even opened
    studio = open_studio()
    runner = BatchRunner(
        studio,
        loaded,
        session=session,
        concurrency=concurrency,
        rpm=rpm,
        budget=budget,
        retry_failed=retry_failed,
        progress=make_progress("none" if json_out and progress == "auto" else mode),
    )
    if dry_run:
        preview = runner.preview()
        if json_out:
            print_json(preview.to_dict())
        else:
            _print_preview(preview)
        return
    # The live display and plain lines already showed each failure as it happened.
    list_failures = mode == "none" or (mode == "auto" and json_out)
    try:
        report = runner.run()
    except BatchInterrupted as exc:
        _print_report(exc.report, json_out, list_failures)
        raise
    _print_report(report, json_out, list_failures)
    problem = report.problem()
    if problem is not None:
        raise BatchIncompleteError(problem, report=report)


@app.command("status")
def status(
    target: Annotated[str, typer.Argument(help="A shot-list file, a batch id, or a batch name.")],
    session: SessionOption = None,
    json_out: JsonOption = False,
) -> None:
    """Where each shot of a batch stands (done, failed, interrupted, running, new, or a
    retake not needed yet or at all) and, for checked shots, their scores and picks."""
    from onmodel.batch import batch_status

    studio = open_studio()
    found = batch_status(studio, target, session=session)
    if json_out:
        print_json(found.to_dict())
        return
    _print_status(found)


@app.command("list")
def list_(json_out: JsonOption = False) -> None:
    """Every batch, with live counts."""
    from onmodel.batch import list_batches

    studio = open_studio()
    batches = list_batches(studio)
    if json_out:
        print_json([b.to_dict() for b in batches])
        return
    if not batches:
        console.print("no batches yet (run one with: onmodel batch run FILE)")
        return
    columns = [
        Column("id", identifier=True),
        Column("name", identifier=True),
        Column("session", identifier=True),
        Column("status", identifier=True),
        Column("done", identifier=True),
        Column("failed", drop=3),
        Column("left", drop=2),
        Column("updated", drop=1),
    ]
    rows = []
    for b in batches:
        needed = b.total - b.counts.get("not needed", 0)  # takes after an on-model one are not
        left = needed - b.counts.get("done", 0) - b.counts.get("failed", 0)
        rows.append(
            [
                f"#{b.id}",
                b.name,
                b.session,
                b.status,
                f"{b.counts.get('done', 0)}/{needed}",
                str(b.counts.get("failed", 0)),
                str(left),
                b.updated_at.strftime("%Y-%m-%d %H:%M") if b.updated_at else "-",
            ]
        )
    print_table(columns, rows)


@app.command("schema")
def schema() -> None:
    """Print the JSON Schema of the shot-list format (for editors and validators)."""
    from onmodel.batch import json_schema

    print(json.dumps(json_schema(), indent=2))


# ---------------------------------------------------------------------------------- output


def _print_preview(preview: BatchPreview) -> None:
    """One row per shot; settings shared by every shot are said once, above the table."""
    from onmodel.batch.retakes import check_mark

    for message in preview.warnings:
        warn(message)
    shots = [p.status.shot for p in preview.shots]
    routes = {f"{s.provider} / {s.model}" for s in shots}
    params = {inline_fields(s.params) for s in shots}
    per_shot_route, per_shot_params = len(routes) > 1, len(params) > 1
    shared = [*(routes if not per_shot_route else ()), *(params if not per_shot_params else ())]
    header = f"batch {preview.name} on {preview.session}"
    console.print(Text(header + (f" — {', '.join(shared)}" if shared else ""), style="bold"))
    columns = [Column("#", identifier=True), Column("line", identifier=True), Column("shot")]
    columns.append(Column("state"))
    columns += [Column("provider / model", drop=2)] if per_shot_route else []
    columns += [Column("params", drop=1)] if per_shot_params else []
    checked = any(shot.take is not None for shot in shots)
    columns += [Column("check", identifier=True)] if checked else []
    columns.append(Column("max USD", identifier=True))
    unchecked = {entry.key for entry in preview.settlement.unchecked}
    unanswered = {entry.key for entry in preview.settlement.unanswered}
    rows: list[list[str | Text]] = []
    for planned in preview.shots:
        shot = planned.status.shot
        state = planned.status.state
        action = "run" if planned.runs else "skip"
        if state == "failed" and not planned.runs:
            action = "skip (--retry-failed)"
        elif state == "retake":
            action = "run if drifted"
        elif shot.key in unchecked:
            action = "check"
        elif shot.key in unanswered:
            action = "check again"
        cells: list[str | Text] = [str(shot.number), str(shot.line), shot.label]
        cells.append(Text.assemble((state, STATE_STYLE.get(state, "")), f" → {action}"))
        if per_shot_route:
            cells.append(f"{shot.provider} / {shot.model}")
        if per_shot_params:
            cells.append(inline_fields(shot.params))
        if checked:
            cells.append(check_mark(preview.settlement.shot_dict(planned.status), state))
        cells.append(_money(planned.estimate) if planned.runs else "-")
        rows.append(cells)
    print_table(columns, rows)
    parent = f"#{preview.parent_id}" if preview.parent_id else "the anchor"
    estimate = f"estimated at most {_money(preview.estimated_total)}"
    if preview.unpriced_checks:
        estimate += f" for the shots, leaving out up to {preview.paid_checks} paid checks"
    console.print(
        f"{len(preview.shots)} shots: {len(preview.to_run)} to run, "
        f"{len(preview.shots) - len(preview.to_run)} skipped; {estimate}; "
        f"shots without from: branch from {parent}"
    )
    for message in preview.unpriced_checks:
        console.print(message)
    if preview.unpriced_checks and preview.budget is not None:
        console.print(f"budget ${preview.budget}: the run would be refused before anything is made")
    elif preview.paid_checks:
        console.print(
            f"and up to {preview.paid_checks} paid checks, each priced once its image exists; "
            "they count against --budget as the run goes"
        )
    if preview.budget is not None and preview.within_budget < len(preview.to_run):
        console.print(
            f"budget ${preview.budget}: the run would stop after "
            f"{preview.within_budget} of {len(preview.to_run)} shots by the estimates"
        )


def _money(value: object) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _print_shots(shots: Sequence[ShotFailure], mark: str, what: str, most: int = 10) -> None:
    """The first ``most`` shots of a report's list (failed, drifted, check failed), a line
    each with its image, label, line in the file and why; how many more there are."""
    for shot in shots[:most]:
        image = f"#{shot.image_id} " if shot.image_id else ""
        console.print(f"{mark} {image}{shot.label} (line {shot.line}): {shot.error}", markup=True)
    if len(shots) > most:
        console.print(f"... and {len(shots) - most} more {what}")


def _print_report(report: BatchReport, json_out: bool, list_failures: bool) -> None:
    if json_out:
        print_json(report.to_dict())
        return
    if list_failures:
        _print_shots(report.failures, "[red]✗[/red]", "failures")
    _print_shots(report.drifted, "[yellow]~[/yellow]", "drifted")
    _print_shots(report.check_failed, "[yellow]?[/yellow]", "whose check failed")
    console.print(report.summary())


def _print_status(found: BatchStatus) -> None:
    from onmodel.batch.retakes import check_mark, describe_counts

    summary = found.summary
    ident = f"#{summary.id}" if summary.id is not None else "(never run)"
    counts = ", ".join(f"{n} {state}" for state, n in summary.counts.items() if n)
    checks = describe_counts(summary.check_counts)
    console.print(
        f"[bold]batch {summary.name}[/bold] {ident} on {summary.session}: "
        f"{summary.status}; {counts or 'no shots'}" + (f"; {checks}" if checks else "")
    )
    checked = any(line.take is not None for line in found.shots)
    columns = [
        Column("#", identifier=True),
        Column("state", identifier=True),
        Column("image", identifier=True),
        Column("shot"),
        *([Column("check", identifier=True)] if checked else []),
        Column("key", identifier=True, drop=1),
        Column("error"),
    ]
    rows: list[list[str | Text]] = [
        [
            str(line.number),
            Text(line.state, style=STATE_STYLE.get(line.state, "")),
            f"#{line.image_id}" if line.image_id else "-",
            line.label,
            *([check_mark(line.check, line.state)] if checked else []),
            line.key[:12],
            line.error or line.check.get("check_error") or "",
        ]
        for line in found.shots
    ]
    print_table(columns, rows)
