"""``onmodel character ...``"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from onmodel.cli import curation
from onmodel.cli.context import open_studio
from onmodel.cli.output import Column, console, print_json, print_table
from onmodel.cli.render import describe_image_line

if TYPE_CHECKING:
    from onmodel.handles import Character
    from onmodel.studio import Studio

app = typer.Typer(help="Create, import and inspect characters.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


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
    strict: curation.StrictOption = False,
    json_out: JsonOption = False,
) -> None:
    """Create a character and generate its anchor image on a plain background."""
    studio = open_studio()
    params = {"size": size} if size else None
    character = studio.create_character(
        name,
        prompt=prompt,
        sheet=sheet,
        slug=slug,
        provider=provider,
        model=model,
        params=params,
        strict=strict,
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
    json_out: JsonOption = False,
) -> None:
    """Adopt an existing image as a character's anchor (character describe then reads a
    model sheet from it)."""
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
        console.print(f"{verb} character [bold]{character.slug}[/bold]")
        if anchor is not None:
            console.print(f"anchor: {describe_image_line(anchor)}")
    if not strict:
        curation.warn_unclean(studio, anchor)


@app.command("list")
def list_(
    hidden: Annotated[bool, typer.Option("--hidden", help="The hidden characters.")] = False,
    json_out: JsonOption = False,
) -> None:
    """All characters (the hidden ones with --hidden)."""
    studio = open_studio()
    characters = studio.characters(hidden=hidden)
    if json_out:
        print_json([c.to_dict() for c in characters])
        return
    if not characters:
        console.print(
            "no hidden characters"
            if hidden
            else "no characters yet: onmodel character new NAME --prompt '...'"
        )
        return
    columns = [
        Column("slug", identifier=True),
        Column("name", drop=2),
        Column("anchor", identifier=True),
        Column("sessions"),
        Column("description", drop=1),
    ]
    rows = [
        [
            c.slug,
            c.name,
            str(c.anchor_image_id or "-"),
            str(len(studio.sessions(c))),
            c.description[:60],
        ]
        for c in characters
    ]
    print_table(columns, rows)


@app.command("show")
def show(
    character: Annotated[str, typer.Argument(help="Slug, name or id.")],
    json_out: JsonOption = False,
) -> None:
    """A character's description, model sheet, anchor and sessions."""
    studio = open_studio()
    found = studio.character(character)
    sessions = studio.sessions(found)
    views = studio.views(found)
    if json_out:
        data = found.to_dict()
        data["anchor"] = found.anchor.to_dict() if found.anchor else None
        data["views"] = {view.request.view: view.id for view in views}
        data["sessions"] = [s.slug for s in sessions]
        print_json(data)
        return
    console.print(f"[bold]{found.name}[/bold] ({found.slug}, id {found.id})")
    console.print(f"description: {found.description or '-'}")
    curation.print_sheet(found.sheet)
    anchor = found.anchor
    console.print(f"anchor: {describe_image_line(anchor) if anchor else '-'}")
    if anchor is not None and anchor.gen_id:
        console.print(f"gen id: {anchor.gen_id}")
    shown = ", ".join(f"{view.request.view} #{view.id}" for view in views)
    console.print(f"views: {shown or '-'}", markup=False)
    console.print(f"sessions: {', '.join(s.slug for s in sessions) or '-'}")


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
        params={"size": size} if size else None,
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
