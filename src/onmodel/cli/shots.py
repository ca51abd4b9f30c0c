"""``onmodel shot``, ``tree`` and ``show``: making images and reading their lineage."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from onmodel.cli.context import open_studio
from onmodel.cli.output import console, print_dim, print_json, warn
from onmodel.cli.params import ParamOption, parse_params
from onmodel.cli.render import (
    TONE_STYLES,
    TreeEntry,
    describe_image_line,
    inline_fields,
    print_field,
    print_lineage,
    tree_entries,
)
from onmodel.errors import NotFoundError
from onmodel.limits import escape_controls
from onmodel.lineage import (
    Fold,
    View,
    cast_text,
    fold_fields,
    image_casts,
    is_ensemble_of,
    member_name,
    node_fields,
    with_images,
)
from onmodel.status import ImageStatus

if TYPE_CHECKING:
    from onmodel.handles import Image
    from onmodel.providers.base import InputImage
    from onmodel.store.records import CheckRecord
    from onmodel.studio.core import Studio
    from onmodel.studio.plans import ShotPlan
    from onmodel.studio.retakes import RetakeReport


def shot(
    text: Annotated[str, typer.Argument(help="Free text for the shot.")] = "",
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="Slug or id (default: current).")
    ] = None,
    pose: Annotated[str, typer.Option(help="e.g. 'playing guitar'.")] = "",
    outfit: Annotated[str, typer.Option(help="e.g. 'sportswear'.")] = "",
    expression: Annotated[str, typer.Option(help="e.g. 'crying'.")] = "",
    scene: Annotated[str, typer.Option(help="e.g. 'park at dusk'.")] = "",
    action: Annotated[str, typer.Option(help="e.g. 'taking a selfie with a dog'.")] = "",
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with", help="Who joins the lead in the shot, from the session's cast (repeatable)."
        ),
    ] = None,
    cast: Annotated[
        list[str] | None,
        typer.Option(
            "--cast",
            help="Everyone in the shot, in order, comma-separated (e.g. mia,rin); "
            "instead of --with.",
        ),
    ] = None,
    set_: Annotated[
        str | None, typer.Option("--set", help="The set (a place in the cast) it happens in.")
    ] = None,
    from_image: Annotated[
        str | None, typer.Option("--from", help="Branch from this image id instead of the head.")
    ] = None,
    ref: Annotated[
        list[Path] | None, typer.Option("--ref", help="Extra reference image (repeatable).")
    ] = None,
    provider: Annotated[str | None, typer.Option(help="Override the session's provider.")] = None,
    model: Annotated[str | None, typer.Option(help="Override the session's model.")] = None,
    size: Annotated[str | None, typer.Option(help="e.g. 1024x1536 or 1536x864.")] = None,
    quality: Annotated[str | None, typer.Option(help="low, medium, high, auto...")] = None,
    param: ParamOption = None,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", help="Refuse if the shot could cost more than this (USD)."),
    ] = None,
    same: Annotated[
        bool,
        typer.Option("--same", help="Make the character again as it is (a shot with no request)."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the composed prompt; record and spend nothing.")
    ] = False,
    check: Annotated[
        str | None,
        typer.Option(
            "--check", help="Check each take: palette (offline, free) or judge (vision model)."
        ),
    ] = None,
    min_score: Annotated[
        int | None, typer.Option("--min-score", help="A take's pass mark, 0-100 (default 80).")
    ] = None,
    takes: Annotated[
        int | None,
        typer.Option("--takes", help="Retake until one passes, at most this many takes."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Generate the next shot of a session, with the anchor of everyone in it attached
    (--with, --cast, --set); with --check, check it and retake until a take is on model
    (exit 1 if none is)."""
    checking = check is not None or takes is not None or min_score is not None
    takes = 1 if takes is None else takes
    if checking:
        from onmodel.studio.retakes import check_retake_options

        check_retake_options(takes, min_score)  # refused before anything is planned
    studio = open_studio()
    plan = studio.session(session).plan(
        text,
        pose=pose,
        outfit=outfit,
        expression=expression,
        scene=scene,
        action=action,
        with_=with_ or [],
        cast=[name for names in cast or [] for name in names.split(",")],
        set_=set_ or "",
        same=same,
        size=size,
        quality=quality,
        params=parse_params(param),
        from_image=from_image,
        refs=ref or [],
        provider=provider,
        model=model,
        max_cost=None if max_cost is None else Decimal(str(max_cost)),
    )
    for message in plan.warnings:
        warn(message)
    if dry_run:
        if json_out:
            print_json(plan.to_dict())
            return
        params = f": {inline_fields(plan.params)}" if plan.params else ""
        print_dim(f"{plan.provider} / {plan.model}{params}")
        if plan.character_id is not None and is_ensemble_of(plan.cast, plan.character_id):
            print_dim(f"cast: {cast_text(plan.cast)}")
        attached = studio.provider(plan.provider).attached(plan.generation_request())
        print_dim(f"images sent, in order: {sent_images(plan, attached, ref or [])}")
        if plan.history:
            turns = ", ".join(f"#{turn.image_id}" for turn in plan.history)
            print_dim(f"earlier turns sent again (each picture paid as input): {turns}")
        elif plan.previous_response_id:
            print_dim(f"continues response {plan.previous_response_id}: its images stay there")
        cost = plan.estimated_max_cost
        each = " a take" if checking and takes > 1 else ""
        print_dim(f"cost at most{each}: {'$' + cost if cost is not None else 'unknown'}")
        print(escape_controls(plan.prompt))  # plain, for pipes; a revised prompt may hold escapes
        if checking:
            print_dim(_retake_plan(studio, check or "palette", takes, cost, min_score))
        return
    if not checking:
        report(studio.execute(plan), json_out)
        return
    from onmodel.cli.checks import print_retakes

    retakes = studio.shoot_until_on_model(
        plan,
        checker=check or "palette",
        takes=takes,
        min_score=min_score,
        max_cost=None if max_cost is None else Decimal(str(max_cost)),
    )
    if json_out:
        print_json(retakes_dict(retakes))
    else:
        print_retakes(retakes)
    if not retakes.passed:
        raise typer.Exit(1)


def sent_images(plan: ShotPlan, attached: Sequence[InputImage], refs: Sequence[Path]) -> str:
    """``1 anchor of Mia, 2 anchor of Max (creature), 3 anchor of Bedroom (set), 4 parent
    #12, 5 view side of Mia, 6 --ref sketch.png``: every image a shot attaches (a provider
    that keeps a conversation attaches only what it has not seen), numbered as its prompt
    numbers them, and whose each is (plain text: print it as typed)."""
    members = {member.id: member for member in plan.cast}
    extras = iter(refs)  # --ref files are sent last, in the order given
    shown = []
    for number, sent in enumerate(attached, 1):
        member = members.get(sent.member_id) if sent.member_id is not None else None
        whose = f" of {member_name(member)}" if member is not None else ""
        if sent.role == "extra":
            what = f"--ref {next(extras, Path(sent.sha256[:12])).name}"
        elif sent.role == "view":
            what = f"view {sent.view}{whose}" if sent.view else f"view{whose}"
        elif sent.role == "parent":
            what = f"parent #{sent.image_id}"
        else:
            what = f"{sent.role}{whose}" if whose else f"{sent.role} #{sent.image_id}"
        shown.append(f"{number} {what}")
    return ", ".join(shown) or "none"


def _retake_plan(
    studio: Studio, checker: str, takes: int, cost: str | None, min_score: int | None
) -> str:
    """What a dry run of ``shot --check`` would go on to do, and its worst case."""
    from onmodel.checkers.base import DEFAULT_MIN_SCORE

    mark = DEFAULT_MIN_SCORE if min_score is None else min_score
    then = f"then: each take checked with {checker} (pass mark {mark})"
    if takes > 1:
        then += f", up to {takes} takes until one is on model"
        if cost is not None:
            then += f"; the takes could cost up to ${Decimal(cost) * takes} in all"
    if studio.checks.checker(checker).billed:
        then += f", plus up to {takes} paid check{'s' if takes > 1 else ''}"
    return then


def retakes_dict(retakes: RetakeReport) -> dict[str, Any]:
    """A retake loop as JSON: every take with its check, and the pick."""
    from onmodel.checkview import check_dict

    casts = image_casts(take.image for take in retakes.takes)
    return {
        "takes": [
            {
                **take.image.to_dict(cast=casts[take.image.id]),
                "check": None if take.check is None else check_dict(take.check),
            }
            for take in retakes.takes
        ],
        "pick": None if retakes.pick is None else retakes.pick.id,
        "passed": retakes.passed,
        "min_score": retakes.min_score,
        "checker": retakes.checker,
        "stopped": retakes.stopped or None,
    }


def report(image: Image, json_out: bool) -> None:
    """How a finished (or pending manual) shot is shown, for shot, retry and attach alike."""
    if json_out:
        print_json(
            {
                **image.to_dict(),
                "messages": list(image.messages),
                "first_message": image.first_message,
                "attach": [str(path) for path in image.attachments],
            }
        )
        return
    for number, message in enumerate(image.messages, image.first_message):
        attach = image.attachments if number == image.first_message else ()
        with_file = f", with {' and '.join(map(str, attach))} attached" if attach else ""
        console.print(Text(f"— message {number} to paste into ChatGPT{with_file} —", style="bold"))
        print(escape_controls(message))
        print()
    console.print(describe_image_line(image))
    from onmodel.providers import is_manual  # here: `onmodel --help` never loads providers

    if image.status == ImageStatus.PENDING and is_manual(image.provider):
        console.print(
            f"then save the picture ChatGPT makes and run: onmodel attach {image.id} FILE "
            "[--gen-id GEN_ID]"
        )


def retry(
    image: Annotated[str, typer.Argument(help="The failed image's id.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Run a failed shot again, as a new image linked to the failed one."""
    report(open_studio().retry(image), json_out)


def attach(
    image: Annotated[str, typer.Argument(help="The pending ChatGPT shot's id.")],
    file: Annotated[Path, typer.Argument(help="The picture you saved from ChatGPT.")],
    gen_id: Annotated[
        str | None, typer.Option("--gen-id", help="The gen id ChatGPT showed.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Complete a pending ChatGPT shot with the picture you saved."""
    report(open_studio().attach(image, file, gen_id=gen_id), json_out)


def tree(
    session: Annotated[str | None, typer.Argument(help="Slug or id (default: current).")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Every image, nothing folded (streams at any size).")
    ] = False,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Start at this image: it and what was made from it."),
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option("--depth", min=0, help="Generations to show below the start; the rest fold."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Images to show at most; the rest fold.")
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON for scripts: every image once with its parent_id; the whole "
            "lineage unless --from/--depth/--limit.",
        ),
    ] = False,
) -> None:
    """Show a session's lineage: by default the line down to the head, with the rest folded."""
    studio = open_studio()
    found = studio.session(session)
    index = found.lineage()
    first = studio.image(start).id if start is not None else None
    if first is not None and first not in index:
        raise NotFoundError(f"image {first} is not in session {found.slug}'s lineage")
    view = index.window(
        found.head_image_id,
        start=first,
        depth=depth,
        limit=limit,
        everything=everything or json_out,
    )
    if json_out:
        write_tree_json(view, studio.lookups.images_by_id)
        return
    console.print(f"[bold]{found.slug}[/bold] — {found.character.name}")
    drawn = print_lineage(
        console, view, studio.lookups.images_by_id, found.head_image_id, _fold_hint
    )
    if drawn < len(index):
        console.print(
            f"[dim]{drawn:,} of {len(index):,} images shown; "
            f"everything: onmodel tree {found.slug} --all[/dim]"
        )


FOLD_OPENS = 40  # images a fold's hint opens: one screen, not the 50,000 it may hold


def _fold_hint(fold: Fold) -> str:
    return f"onmodel tree --from {fold.open_id} --limit {FOLD_OPENS}"


def show(
    image: Annotated[str, typer.Argument(help="Image id.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Everything recorded about one image: request, prompt, references, lineage, file, and
    every check of it."""
    from onmodel.checkview import check_dict

    studio = open_studio()
    found = studio.image(image)
    cast = image_casts([found])[found.id]
    data = found.to_dict(cast=cast)
    data["lineage"] = [*found.ancestor_ids(), found.id]
    data["children"] = [c.id for c in found.children]
    sheet = studio.sheet_of(found)
    data["sheet_version"] = sheet.number if sheet is not None else None
    data["tags"] = studio.tags(found)
    checks = studio.checks_of([found.id]).get(found.id, [])
    data["checks"] = [check_dict(record) for record in checks]
    if json_out:
        print_json(data)
        return
    console.print(Text(describe_image_line(found), style="bold"))
    rows: list[tuple[str, object]] = [
        ("status", data["status"]),
        *(
            [("hidden", f"since {data['hidden_at']} (onmodel unhide {found.id})")]
            if data["hidden_at"]
            else []
        ),
        ("session", data["session_id"]),
        *(
            [("cast", cast_text(cast.everyone))]
            if is_ensemble_of(cast.everyone, found.character_id)
            else []
        ),
        ("parent", data["parent_id"]),
        ("lineage", _path(data["lineage"])),
        ("children", ", ".join(f"#{i}" for i in data["children"]) or "-"),
        ("request", data["request"]),
        ("provider / model", f"{data['provider']} / {data['model']}"),
        ("parameters", inline_fields(data["params"])),
        ("returned", inline_fields(data["returned"])),
        ("references", ", ".join(_ref(r) for r in data["references"]) or "-"),
        ("template", f"{data['template']['name']} ({(data['template']['sha256'] or '')[:12]})"),
        ("model sheet", f"version {sheet.number}" if sheet is not None else "-"),
        ("tags", ", ".join(data["tags"]) or "-"),
        *(
            [("picked", f"{data['picked_at']} (the best-scoring take of its retake loop)")]
            if data["picked_at"]
            else []
        ),
        ("revised prompt", data["revised_prompt"] or "-"),
        ("gen id", data["gen_id"] or "-"),
        ("response id", data["response_id"] or "-"),
        ("usage", inline_fields(data["usage"])),
        ("cost (USD)", data["cost_usd"] if data["cost_usd"] is not None else "unknown"),
        ("latency", f"{data['latency_ms']} ms" if data["latency_ms"] is not None else "-"),
        ("file", data["file"]["path"] or "-"),
        ("sha256", data["file"]["sha256"] or "-"),
        ("created", data["created_at"]),
    ]
    if data["error"]:
        rows.append(("error", _error_text(data["error"])))
    for key, value in rows:
        print_field(console, key, value)
    _print_checks(checks)
    console.print(Text("prompt:", style="bold"))
    print(escape_controls(data["prompt"]))


def _print_checks(checks: list[CheckRecord]) -> None:
    """``checks:`` and each check, oldest first: its badge, who made it with what score and
    pass mark (or why it could not tell), the checker's version, cost and time, then a line
    per trait."""
    from onmodel.presentation import check_view

    if not checks:
        print_field(console, "checks", "none (onmodel check IMAGE)")
        return
    console.print(Text("checks:", style="bold"))
    for record in checks:
        shown = check_view(record)
        line = Text("  ")
        line.append(escape_controls(shown.text), style=TONE_STYLES[shown.tone])
        facts = f"{shown.title} · version {shown.version} · {shown.cost} · {shown.created}"
        line.append(f"  {escape_controls(facts)}", style="dim")
        console.print(line, soft_wrap=True)
        for trait in shown.traits:
            console.print(Text(f"    {escape_controls(trait.text)}"), soft_wrap=True)


def _error_text(error: dict[str, Any]) -> str:
    """``auth (invalid_api_key): the message [categories: a, b]``, as the row recorded it."""
    code = f" ({error['code']})" if error.get("code") else ""
    categories = error.get("categories") or []
    listed = f" [categories: {', '.join(map(str, categories))}]" if categories else ""
    return f"{error['type']}{code}: {error.get('message') or '-'}{listed}"


def _path(ids: list[int], ends: int = 4) -> str:
    """The path from the root to the image, its middle folded on a long series."""
    shown = [f"#{i}" for i in ids]
    if len(ids) > 3 * ends:
        folded = len(ids) - 2 * ends
        shown = [*shown[:ends], f"… {folded:,} more …", *shown[-ends:]]
    return " → ".join(shown)


def _ref(ref: dict[str, object]) -> str:
    who = f"#{ref['image_id']}" if ref["image_id"] else str(ref["sha256"])[:12]
    return f"{ref['position']}:{ref['role']} {who}"


def write_tree_json(view: View, load: Callable[[list[int]], Mapping[int, Image]]) -> None:
    """``view`` as a JSON list on stdout: every image once, parents before children, each with
    its ``parent_id``, who is in it (``cast``: slugs, figures in order then the set), its
    newest check (``check``, as ``show --json`` words it) and whether a retake loop picked it
    (and a fold as one entry where it hangs), written as it is walked and loaded a chunk at
    a time, with a chunk's checks and casts read for the whole chunk.

    Flat, not nested: a 100,000-shot series is a chain 50,000 deep, which nested JSON would
    make too deep for ``jq`` (256 levels) or Python's ``json`` (about 1,000) to read, as
    ``series.json`` is flat for the same reason.
    """

    from onmodel.checkview import check_dict

    def entry(step: tuple[int | Fold | None, int | Fold], found: TreeEntry | None) -> str:
        parent, key = step
        where = {"parent_id": _parent_id(parent)}
        if isinstance(key, Fold):
            fields = {**where, **fold_fields(key)}
        elif found is None:
            fields = {"id": key, **where, "status": "gone"}
        else:
            check = found.checked.check
            fields = {
                "id": key,
                **where,
                **node_fields(found.image),
                "cast": [member.slug for member in found.cast.everyone],
                "check": None if check is None else check_dict(check),
                "picked": found.image.picked_at is not None,
            }
        return json.dumps(fields, ensure_ascii=False, default=str)

    steps = with_images(view.walk(), lambda step: step[1], tree_entries(load))
    out = sys.stdout
    out.write("[")
    for index, (step, found) in enumerate(steps):
        out.write(("," if index else "") + "\n  " + entry(step, found))
    out.write("\n]\n")


def _parent_id(parent: int | Fold | None) -> int | None:
    """The image a line hangs from; under a folded run, the run's last image (its parent,
    though the run is not listed)."""
    if isinstance(parent, Fold):
        return parent.last_id
    return parent
