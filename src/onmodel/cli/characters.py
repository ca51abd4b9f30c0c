"""``onmodel character ...``"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from onmodel.cli import curation
from onmodel.cli.context import open_studio
from onmodel.cli.output import Column, console, print_json, print_table
from onmodel.cli.params import ParamOption, parse_params
from onmodel.cli.render import describe_image_line
from onmodel.kinds import KINDS, SET, check_kind

if TYPE_CHECKING:
    from onmodel.handles import Character
    from onmodel.studio import Studio

app = typer.Typer(
    help="Create, import and inspect characters, creatures, props and sets.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
KindOption = Annotated[
    str,
    typer.Option(
        "--kind",
        metavar="[" + "|".join(KINDS) + "]",
        help="What it is: a character, a creature (a pet...), a prop, or a set (a place "
        "its shots take place in).",
    ),
]


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="The character's name.")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="What the character looks like.")],
    sheet: Annotated[
        Path | None, typer.Option("--sheet", help="Model sheet YAML: hair, eyes, palette...")
    ] = None,
    slug: Annotated[
        str | None,
        typer.Option(
            help="Short name to type: lowercase letters of any script, digits and dashes "
            "(default: from NAME, e.g. 'Mia Chen' -> mia-chen, 'ミア' -> ミア)."
        ),
    ] = None,
    provider: Annotated[str | None, typer.Option(help="Who draws the anchor.")] = None,
    model: Annotated[str | None, typer.Option(help="Image model for the anchor.")] = None,
    size: Annotated[str | None, typer.Option(help="Anchor size, e.g. 1024x1536.")] = None,
    param: ParamOption = None,
    strict: curation.StrictOption = False,
    kind: KindOption = "character",
    json_out: JsonOption = False,
) -> None:
    """Create a character (or a creature, prop or set: --kind) and generate its anchor image:
    on a plain background, or for a set an establishing shot of the empty place."""
    studio = open_studio()
    params = parse_params(param, {"size": size})
    character = studio.create_character(
        name,
        prompt=prompt,
        sheet=sheet,
        slug=slug,
        provider=provider,
        model=model,
        params=params,
        strict=strict,
        kind=kind,
    )
    _created(studio, character, "created", json_out=json_out, strict=strict)


@app.command("import")
def import_(
    name: Annotated[str, typer.Argument(help="The character's name.")],
    image: Annotated[Path, typer.Argument(help="An image you already have (png, jpeg, webp).")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Its description.")] = "",
    gen_id: Annotated[str | None, typer.Option("--gen-id", help="ChatGPT's gen id.")] = None,
    revised_prompt: Annotated[
        str | None, typer.Option("--revised-prompt", help="The revised prompt ChatGPT showed.")
    ] = None,
    sheet: Annotated[Path | None, typer.Option("--sheet", help="Model sheet YAML.")] = None,
    slug: Annotated[
        str | None, typer.Option(help="Short name to type (default: from NAME, as for new).")
    ] = None,
    strict: curation.StrictOption = False,
    kind: KindOption = "character",
    json_out: JsonOption = False,
) -> None:
    """Adopt an existing image as a character's anchor (or a creature's, prop's or set's:
    --kind); character describe then reads a model sheet from it."""
    studio = open_studio()
    character = studio.import_character(
        name,
        image,
        prompt=prompt,
        gen_id=gen_id,
        revised_prompt=revised_prompt,
        sheet=sheet,
        slug=slug,
        strict=strict,
        kind=kind,
    )
    _created(studio, character, "imported", json_out=json_out, strict=strict)


def _created(
    studio: Studio, character: Character, verb: str, *, json_out: bool, strict: bool
) -> None:
    """What ``new`` and ``import`` print: the character and its anchor, then (unless
    ``--strict`` already refused an unclean one) what makes the anchor a poor reference."""
    anchor = character.anchor
    if json_out:
        print_json(character.to_dict())
    else:
        console.print(f"{verb} {character.kind} [bold]{character.slug}[/bold]")
        if anchor is not None:
            console.print(f"anchor: {describe_image_line(anchor)}")
    if not strict:
        curation.warn_unclean(studio, anchor)


@app.command("list")
def list_(
    hidden: Annotated[bool, typer.Option("--hidden", help="The hidden characters.")] = False,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", metavar="[" + "|".join(KINDS) + "]", help="Only the ones of this kind."
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """All characters, creatures, props and sets, with what each is (the hidden ones with
    --hidden; one kind with --kind)."""
    wanted = check_kind(kind) if kind is not None else None  # refused before the studio opens
    studio = open_studio()
    characters = studio.characters(hidden=hidden, kind=wanted)
    counts = studio.lookups.session_counts(characters)  # all at once, not a query a row
    if json_out:
        print_json([{**c.to_dict(), "session_counts": counts[c.id]._asdict()} for c in characters])
        return
    if not characters:
        console.print(_none_listed(hidden, wanted), markup=False)
        return
    columns = [
        Column("slug", identifier=True),
        Column("kind", identifier=True),
        Column("name", drop=2),
        Column("anchor", identifier=True),
        Column("sessions"),
        Column("description", drop=1),
    ]
    rows = [
        [
            c.slug,
            c.kind,
            c.name,
            str(c.anchor_image_id or "-"),
            _sessions_cell(counts[c.id].led, counts[c.id].cast),
            c.description[:60],
        ]
        for c in characters
    ]
    print_table(columns, rows)


def _sessions_cell(led: int, cast: int) -> str:
    """``2``: the sessions a character leads; ``2 (+1 cast)``: and those it is cast in."""
    return f"{led} (+{cast} cast)" if cast else str(led)


def _none_listed(hidden: bool, kind: str | None) -> str:
    """What an empty ``character list`` says, and for nothing yet how to make the first."""
    plural = "characters" if kind is None else f"{kind}s"
    if hidden:
        return f"no hidden {plural}"
    how = "" if kind in (None, "character") else f" --kind {kind}"
    return f"no {plural} yet: onmodel character new NAME{how} --prompt '...'"


@app.command("show")
def show(
    character: Annotated[str, typer.Argument(help="Slug, name or id.")],
    json_out: JsonOption = False,
) -> None:
    """A character's (creature's, prop's, set's) description, model sheet (for a set: its
    layout, fixed objects and lighting), anchor, and the sessions it leads or is cast in."""
    studio = open_studio()
    found = studio.character(character)
    sessions = studio.sessions(found)
    member_of = [session.slug for session in studio.sessions_casting(found)]
    views = studio.views(found)
    if json_out:
        data = found.to_dict()
        data["anchor"] = found.anchor.to_dict() if found.anchor else None
        data["views"] = {view.request.view: view.id for view in views}
        data["sessions"] = [s.slug for s in sessions]
        data["cast_in"] = member_of
        print_json(data)
        return
    console.print(f"[bold]{found.name}[/bold] ({found.slug}, id {found.id})")
    console.print(f"kind: {found.kind}")
    console.print(f"description: {found.description or '-'}")
    _print_sheet(found)
    anchor = found.anchor
    console.print(f"anchor: {describe_image_line(anchor) if anchor else '-'}")
    if anchor is not None and anchor.gen_id:
        console.print(f"gen id: {anchor.gen_id}")
    shown = ", ".join(f"{view.request.view} #{view.id}" for view in views)
    console.print(f"views: {shown or '-'}", markup=False)
    console.print(f"sessions: {', '.join(s.slug for s in sessions) or '-'}")
    if member_of:
        console.print(f"in the cast of: {', '.join(member_of)}", markup=False)


PLACE_TRAITS = ("layout", "fixed_objects", "lighting")  # what a set's model sheet is for


def _print_sheet(character: Character) -> None:
    """The model sheet, a trait a line; a set's place first (layout, fixed objects,
    lighting), each shown even when empty: what its shots keep in place, and what is still
    to be written down (``character sheet SLUG --set layout=...``)."""
    sheet = character.sheet
    if character.kind == SET:
        for trait in PLACE_TRAITS:
            value = curation.trait_text(getattr(sheet, trait))
            console.print(f"  {trait}: {value}", markup=False)
        sheet = sheet.model_copy(update={"layout": "", "fixed_objects": [], "lighting": ""})
    curation.print_sheet(sheet)


@app.command("describe")
def describe(
    character: Annotated[str, typer.Argument(help="Slug, name or id.")],
    checker: Annotated[
        str,
        typer.Option(
            "--checker",
            help="palette: the subject's dominant colours, offline and free; judge: a vision "
            "model (needs its API key).",
        ),
    ] = "palette",
    write: Annotated[
        bool, typer.Option("--write", help="Save the proposal as a new sheet version.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Propose a model sheet from the character's anchor (colours as hex codes) and show what
    it would change; --write saves it as a new version."""
    studio = open_studio()
    proposal = studio.describe_character(character, checker)
    changes = proposal.changes()
    version = (
        studio.edit_sheet(proposal.character, proposal.proposed) if write and changes else None
    )
    if json_out:
        print_json({**proposal.to_dict(), "version": version.number if version else None})
        return
    slug = proposal.character
    if not changes:
        console.print(f"{slug}'s model sheet already says what {checker} sees", markup=False)
        return
    console.print(f"{slug}'s model sheet, as {checker} reads the anchor:", markup=False)
    for trait, (now, proposed) in changes.items():
        now_text, proposed_text = curation.trait_text(now), curation.trait_text(proposed)
        console.print(f"  {trait}: {now_text} → {proposed_text}", markup=False)
    if version is not None:
        console.print(f"saved: {slug}'s model sheet is now version {version.number}", markup=False)
    else:
        console.print(
            f"not saved; to save it: onmodel character describe {slug} --write", markup=False
        )


@app.command("turnaround")
def turnaround(
    character: Annotated[str, typer.Argument(help="Slug, name or id.")],
    views: Annotated[
        str,
        typer.Option("--views", help="Comma-separated views to draw."),
    ] = "front,three-quarter,side,back",
    provider: Annotated[str | None, typer.Option(help="Who draws the views.")] = None,
    model: Annotated[str | None, typer.Option(help="Image model for the views.")] = None,
    size: Annotated[str | None, typer.Option(help="View size, e.g. 1024x1536.")] = None,
    param: ParamOption = None,
    json_out: JsonOption = False,
) -> None:
    """Draw reference views of a character from its anchor, one request each; later shots
    attach them beside the anchor, as many as the model takes."""
    studio = open_studio()
    made = studio.turnaround(
        character,
        views=views.split(","),
        provider=provider,
        model=model,
        params=parse_params(param, {"size": size}),
    )
    if json_out:
        print_json([image.to_dict() for image in made])
    else:
        for image in made:
            console.print(describe_image_line(image), markup=False)
    failed = [image.request.view for image in made if not image.succeeded]
    if failed:
        from onmodel.errors import GenerationError

        slug = studio.character(character).slug
        raise GenerationError(
            f"{len(failed)} of {len(made)} views failed; draw them again with: "
            f"onmodel character turnaround {slug} --views {','.join(failed)}"
        )


# Editing a character (issue 13's curation), written beside the other curation commands.
app.command("rename")(curation.character_rename)
app.command("hide")(curation.character_hide)
app.command("delete")(curation.character_hide)
app.command("unhide")(curation.character_unhide)
app.command("anchor")(curation.character_anchor)
app.command("sheet")(curation.character_sheet)
