"""``onmodel character ...``"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onmodel.cli import curation
from onmodel.cli.context import open_studio
from onmodel.cli.output import Column, console, print_json, print_table
from onmodel.cli.render import describe_image_line

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
    json_out: JsonOption = False,
) -> None:
    """Create a character and generate its anchor image on a plain background."""
    studio = open_studio()
    params = {"size": size} if size else None
    character = studio.create_character(
        name, prompt=prompt, sheet=sheet, slug=slug, provider=provider, model=model, params=params
    )
    if json_out:
        print_json(character.to_dict())
        return
    anchor = character.anchor
    console.print(f"created character [bold]{character.slug}[/bold]")
    if anchor is not None:
        console.print(f"anchor: {describe_image_line(anchor)}")


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
    json_out: JsonOption = False,
) -> None:
    """Adopt an existing image as a character's anchor."""
    studio = open_studio()
    character = studio.import_character(
        name,
        image,
        prompt=prompt,
        gen_id=gen_id,
        revised_prompt=revised_prompt,
        sheet=sheet,
        slug=slug,
    )
    if json_out:
        print_json(character.to_dict())
        return
    console.print(f"imported character [bold]{character.slug}[/bold]")
    anchor = character.anchor
    if anchor is not None:
        console.print(f"anchor: {describe_image_line(anchor)}")


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
    sheet = {k: v for k, v in found.sheet.model_dump().items() if v}
    for key, value in sheet.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"  {key}: {shown}")
    anchor = found.anchor
    console.print(f"anchor: {describe_image_line(anchor) if anchor else '-'}")
    if anchor is not None and anchor.gen_id:
        console.print(f"gen id: {anchor.gen_id}")
    shown = ", ".join(f"{view.request.view} #{view.id}" for view in views)
    console.print(f"views: {shown or '-'}", markup=False)
    console.print(f"sessions: {', '.join(s.slug for s in sessions) or '-'}")


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
