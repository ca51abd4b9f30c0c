"""``onmodel session ...``"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

import typer

from onmodel.cli.context import open_studio
from onmodel.cli.output import console, print_json
from onmodel.limits import MAX_ID
from onmodel.status import ImageStatus

if TYPE_CHECKING:
    from onmodel.handles import Image

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
    """All sessions with how many images each holds; the current one is marked."""
    studio = open_studio()
    sessions = studio.sessions(character)
    counts = studio.image_counts(sessions)
    current = studio.current_session()
    if json_out:
        print_json(
            [
                {
                    **s.to_dict(),
                    "images": counts[s.id],
                    "current": current is not None and s.id == current.id,
                }
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
            f"{counts[s.id]:,}",
            str(s.head_image_id or "-"),
        )
    console.print(table)


RECENT_IMAGES = 20  # what `session show` lists by default: the latest screenful
PRINT_CHUNK = 500
SUMMARY_ORDER = (
    ImageStatus.SUCCEEDED,
    ImageStatus.FAILED,
    ImageStatus.INTERRUPTED,
    ImageStatus.PENDING,
)


@app.command("show")
def show(
    session: Annotated[str | None, typer.Argument(help="Slug or id (default: current).")] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=1, max=MAX_ID, help="How many of the newest images to list."),
    ] = RECENT_IMAGES,
    everything: Annotated[
        bool, typer.Option("--all", help="Every image, oldest first (streams at any size).")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """A session's settings, its images counted by status, and its newest images."""
    studio = open_studio()
    found = studio.session(session)
    counts = studio.status_counts(found)
    total = sum(counts.values())
    images: Iterable[Image]
    if everything:
        images, folded = studio.iter_session_images(found), 0  # a page at a time
    else:
        recent = studio.recent_images(found, limit)
        images, folded = recent, max(total - len(recent), 0)
    if json_out:
        head = {**found.to_dict(), "image_count": total, "status_counts": counts}
        _write_json_with_images(head, (image.to_dict() for image in images))
        return
    from onmodel.cli.render import describe_image_line

    console.print(f"[bold]{found.slug}[/bold] (id {found.id}) — {found.title or 'untitled'}")
    console.print(f"character: {found.character.slug}")
    console.print(f"provider: {found.provider}  model: {found.model}  params: {found.params}")
    console.print(f"head: #{found.head_image_id}")
    console.print(_summary(total, counts))
    if folded:
        console.print(
            f"  [dim]… {folded:,} earlier image{'s' if folded != 1 else ''} "
            f"(onmodel session show {found.slug} --all)[/dim]"
        )
    # A screenful per print call, and the lines as plain text: a label is what the user
    # typed, not markup, and rich's per-call work would cost more than reading the images.
    lines = (f"  {describe_image_line(image)}" for image in images)
    while page := list(islice(lines, PRINT_CHUNK)):
        console.print("\n".join(page), markup=False)


def _summary(total: int, counts: Mapping[str, int]) -> str:
    """``images: 1,204 — 1,190 succeeded, 14 failed``: finished work first, then what is
    still open; a status this version does not know (a newer database) comes last."""
    if not total:
        return "images: none yet"
    order = {status.value: position for position, status in enumerate(SUMMARY_ORDER)}
    parts = sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    return f"images: {total:,} — " + ", ".join(f"{n:,} {status}" for status, n in parts)


def _write_json_with_images(head: dict[str, Any], images: Iterable[dict[str, Any]]) -> None:
    """``head`` with an ``"images"`` list, as ``print_json`` would write it, but each image
    written as it comes: ``--all`` never holds a long session's images at once."""
    out = sys.stdout
    opening = json.dumps(head, indent=2, ensure_ascii=False, default=str)
    out.write(opening[:-2] + ',\n  "images": [')
    written = 0
    for image in images:
        text = json.dumps(image, indent=2, ensure_ascii=False, default=str)
        out.write(("," if written else "") + "\n    " + text.replace("\n", "\n    "))
        written += 1
    out.write("\n  ]\n}\n" if written else "]\n}\n")


@app.command("use")
def use(session: Annotated[str, typer.Argument(help="Slug or id.")]) -> None:
    """Make SESSION the current one: shots without --session go there."""
    found = open_studio().use_session(session)
    console.print(f"current session: [bold]{found.slug}[/bold]")
