"""``onmodel check``, and how a check or a retake loop is reported on the terminal.

``check`` exits 1 when any image it checked drifted or could not be checked, so a script (or
CI over a series) can stop on it; 0 means every image is on model.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from onmodel.cli.context import open_studio
from onmodel.cli.output import console, print_json
from onmodel.cli.render import TONE_STYLES
from onmodel.errors import BudgetError, UsageError

if TYPE_CHECKING:
    from onmodel.handles import Image
    from onmodel.store.records import CheckRecord
    from onmodel.studio import Studio
    from onmodel.studio.retakes import RetakeReport


def check(
    images: Annotated[
        list[str] | None, typer.Argument(help="Image ids to check (or --session).")
    ] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", "-s", help="Check every finished shot of this session."),
    ] = None,
    checker: Annotated[
        str, typer.Option("--checker", help="palette (offline, free) or judge (vision model).")
    ] = "palette",
    min_score: Annotated[
        int | None, typer.Option("--min-score", help="The pass mark, 0-100 (default 80).")
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", help="Stop before the checks could cost more (USD)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Check images against their anchor and model sheet, trait by trait; exit 1 if any
    drifted, could not be checked, or was left unchecked by --max-cost."""
    from onmodel.checkview import badge
    from onmodel.studio.retakes import check_retake_options

    if images and session is not None:
        raise UsageError("name the images to check or give --session, not both")
    if not images and session is None:
        raise UsageError("name the images to check, or give --session to check a session's shots")
    mark = check_retake_options(1, min_score)
    studio = open_studio()
    limit = None if max_cost is None else Decimal(str(max_cost))
    made = (
        studio.checks.check_each(
            [studio.image(ref) for ref in dict.fromkeys(images)],  # each image once
            checker,
            min_score=mark,
            max_cost=limit,
        )
        if images
        else studio.check_session(session, checker, min_score=mark, max_cost=limit)
    )
    results: list[CheckRecord] = []
    stopped = ""
    while True:
        try:
            image, record = next(made)
        except StopIteration:
            break
        except BudgetError as exc:
            if not results:
                raise
            stopped = f"stopped: {exc}"
            break
        results.append(record)
        if not json_out:
            print_check(image, record)
    if json_out:
        print_json(
            {
                "checks": [_check_json(studio, record) for record in results],
                "stopped": stopped or None,
            }
        )
    else:
        tones = [badge(record).tone for record in results]
        console.print(
            f"{len(results)} checked with {checker}: {tones.count('ok')} on model, "
            f"{tones.count('drift')} drifted, {tones.count('failed')} could not be checked",
            markup=False,
        )
        if session is not None:
            unmade = sum(
                n for status, n in studio.status_counts(session).items() if status != "succeeded"
            )
            if unmade:
                console.print(
                    f"{unmade} shot{'s' if unmade != 1 else ''} of the session not checked: "
                    "not made (pending, failed or interrupted)",
                    markup=False,
                )
    if stopped and not json_out:
        console.print(stopped, markup=False)
    if stopped or any(record.passed is not True for record in results):
        raise typer.Exit(1)


def _check_json(studio: Studio, record: CheckRecord) -> dict[str, Any]:
    """A check as ``check --json`` prints it; a shot of several also names who in it is not
    checked (its set, its props)."""
    from onmodel.checkview import check_dict, members_of

    data = check_dict(record)
    if members_of(record) != (record,):
        data["not_checked"] = [
            {"character_id": each.id, "name": each.name, "kind": each.kind}
            for each in studio.checks.not_checked(studio.image(record.image_id))
        ]
    return data


def print_check(image: Image, record: CheckRecord, *, prefix: str = "") -> None:
    """An image's check: its badge on the image's line, then each trait that is not simply
    the same (the same ones are counted). A shot of several reads member by member on the
    image's line ("Mia on model 92 · Rin drifted 61: hair colour"), each member's traits
    under its name, and says who in it is not checked (its set, its props)."""
    from onmodel.checkview import badge, member_name, member_text, members_of

    members = members_of(record)
    line = Text(f"{prefix}#{image.id} {image.label}  ")
    if members == (record,):
        shown = badge(record)
        line.append(shown.text, style=TONE_STYLES[shown.tone])
        console.print(line)
        _print_traits(record, f"{prefix}    ")
        return
    for number, member in enumerate(members):
        if number:
            line.append(" · ")
        line.append(member_text(member), style=TONE_STYLES[badge(member).tone])
    console.print(line)
    for member in members:
        console.print(Text(f"{prefix}    {member_name(member)}"))
        _print_traits(member, f"{prefix}        ")
    skipped = image.studio.checks.not_checked(image)
    if skipped:
        names = ", ".join(f"{each.name} ({each.kind})" for each in skipped)
        console.print(Text(f"{prefix}    not checked: {names}: a check measures the figures only"))


def _print_traits(record: CheckRecord, indent: str) -> None:
    """A check's traits that are not simply the same, then how many are."""
    from onmodel.checkers.base import Verdict
    from onmodel.checkview import badge, trait_line, traits_of

    traits = traits_of(record)
    for trait in traits:
        if trait.verdict != Verdict.SAME:
            console.print(Text(f"{indent}{trait_line(trait)}"))
    same = sum(trait.verdict == Verdict.SAME for trait in traits)
    if same:
        console.print(Text(f"{indent}✓ {same} trait{'s' if same != 1 else ''} on model"))
    if record.status == "failed":
        console.print(Text(f"{indent}{badge(record).title}"), style="yellow")


def print_retakes(report: RetakeReport) -> None:
    """Every take with its check, then the pick and whether it passed."""
    from onmodel.cli.render import describe_image_line

    for take in report.takes:
        if take.check is None:
            console.print(describe_image_line(take.image))
        else:
            print_check(take.image, take.check)
    if report.stopped:
        console.print(report.stopped, markup=False)
    if report.pick is None:
        console.print("no take could be checked; nothing was picked", markup=False)
        return
    best = report.best_check
    score = best.score if best is not None else None
    verdict = "on model" if report.passed else f"not on model, pass mark {report.min_score}"
    console.print(
        f"picked #{report.pick.id} ({report.pick.label}, score {score}, {verdict})", markup=False
    )
