"""``onmodel session ...``"""

from __future__ import annotations

from typing import Annotated

import typer

from onmodel.cli.context import open_studio
from onmodel.cli.output import console, print_json

app = typer.Typer(help="Start, list and switch sessions (series).", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("new")
def new(
    character: Annotated[str, typer.Argument(help="The character (slug, name or id).")],
    title: Annotated[str, typer.Option(help="What the series is.")] = "",
    model: Annotated[str | None, typer.Option(help="Image model for its shots.")] = None,
    provider: Annotated[
        str | None, typer.Option(help="preview, openai-images, openai-responses or chatgpt.")
    ] = None,
    size: Annotated[str | None, typer.Option(help="Default size, e.g. 1024x1536.")] = None,
    quality: Annotated[str | None, typer.Option(help="Default quality.")] = None,
    slug: Annotated[str | None, typer.Option(help="Short name to type.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Start a session for CHARACTER; it becomes the current session."""
    studio = open_studio()
    params = {k: v for k, v in {"size": size, "quality": quality}.items() if v}
    session = studio.start_session(
        character, title=title, model=model, provider=provider, params=params, slug=slug
    )
    if json_out:
        print_json(session.to_dict())
        return
    console.print(
        f"started session [bold]{session.slug}[/bold] for {session.character.slug} "
        f"({session.provider}, {session.model}); it is now the current session"
    )


@app.command("list")
def list_(
    character: Annotated[str | None, typer.Argument(help="Only this character's.")] = None,
    json_out: JsonOption = False,
) -> None:
    """All sessions; the current one is marked."""
    studio = open_studio()
    sessions = studio.sessions(character)
    current = studio.current_session()
    if json_out:
        print_json(
            [
                {**s.to_dict(), "current": current is not None and s.id == current.id}
                for s in sessions
            ]
        )
        return
    if not sessions:
        console.print("no sessions yet: onmodel session new CHARACTER")
        return
    from rich.table import Table

    table = Table("", "slug", "character", "title", "provider", "model", "images", "head")
    for s in sessions:
        mark = "*" if current is not None and s.id == current.id else ""
        table.add_row(
            mark,
            s.slug,
            s.character.slug,
            s.title,
            s.provider,
            s.model,
            str(len(s.images())),
            str(s.head_image_id or "-"),
        )
    console.print(table)


@app.command("show")
def show(
    session: Annotated[str | None, typer.Argument(help="Slug or id (default: current).")] = None,
    json_out: JsonOption = False,
) -> None:
    """A session's settings and images."""
    studio = open_studio()
    found = studio.session(session)
    images = found.images()
    if json_out:
        print_json({**found.to_dict(), "images": [i.to_dict() for i in images]})
        return
    from onmodel.cli.render import describe_image_line

    console.print(f"[bold]{found.slug}[/bold] (id {found.id}) — {found.title or 'untitled'}")
    console.print(f"character: {found.character.slug}")
    console.print(f"provider: {found.provider}  model: {found.model}  params: {found.params}")
    console.print(f"head: #{found.head_image_id}")
    for image in images:
        console.print(f"  {describe_image_line(image)}")


@app.command("use")
def use(session: Annotated[str, typer.Argument(help="Slug or id.")]) -> None:
    """Make SESSION the current one: shots without --session go there."""
    found = open_studio().use_session(session)
    console.print(f"current session: [bold]{found.slug}[/bold]")
