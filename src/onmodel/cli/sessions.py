"""``onmodel session ...``"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

import typer

from onmodel.cli.context import open_studio
from onmodel.cli.output import Column, console, print_json, print_table
from onmodel.cli.params import ParamOption, parse_params
from onmodel.cli.render import describe_image_line, inline_fields
from onmodel.errors import UsageError
from onmodel.limits import MAX_ID
from onmodel.lineage import image_casts
from onmodel.status import ImageStatus

if TYPE_CHECKING:
    from onmodel.handles import Character, Image
    from onmodel.studio import Studio

app = typer.Typer(help="Start, list, switch and tidy sessions (series).", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SessionArgument = Annotated[str, typer.Argument(help="Slug or id.")]


@app.command("new")
def new(
    character: Annotated[str, typer.Argument(help="The character (slug, name or id).")],
    title: Annotated[str, typer.Option(help="What the series is.")] = "",
    model: Annotated[str | None, typer.Option(help="Image model for its shots.")] = None,
    provider: Annotated[
        str | None, typer.Option(help="Who draws its shots (see: onmodel providers).")
    ] = None,
    size: Annotated[str | None, typer.Option(help="Default size, e.g. 1024x1536.")] = None,
    quality: Annotated[str | None, typer.Option(help="Default quality.")] = None,
    param: ParamOption = None,
    slug: Annotated[str | None, typer.Option(help="Short name to type.")] = None,
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="Another member of its cast: a character, creature, prop or set its shots "
            "may show or take place in (repeat it for more).",
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Start a session for CHARACTER, its lead (and --with the rest of its cast); it becomes
    the current session."""
    studio = open_studio()
    params = parse_params(param, {"size": size, "quality": quality})
    session = studio.start_session(
        character,
        title=title,
        model=model,
        provider=provider,
        params=params,
        slug=slug,
        with_=with_ or (),
    )
    if json_out:
        print_json(session.to_dict())
        return
    members = session.members
    joined = f" with {', '.join(m.slug for m in members)}" if members else ""
    console.print(
        f"started session {session.slug} for {session.character.slug}{joined} "
        f"({session.provider}, {session.model}); it is now the current session",
        markup=False,
    )


@app.command("list")
def list_(
    character: Annotated[str | None, typer.Argument(help="Only this character's.")] = None,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="The hidden sessions (and hidden characters').")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """All sessions with how many shown images each holds; the current one is marked."""
    studio = open_studio()
    sessions = studio.sessions(character, hidden=hidden)
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
        console.print(
            "no hidden sessions" if hidden else "no sessions yet: onmodel session new CHARACTER"
        )
        return
    columns = [
        Column(""),
        Column("slug", identifier=True),
        Column("character", identifier=True),
        Column("title", drop=1),
        Column("provider", identifier=True, drop=2),
        Column("model", identifier=True, drop=3),
        Column("images"),
        Column("head", identifier=True),
    ]
    rows = [
        [
            "*" if current is not None and s.id == current.id else "",
            s.slug,
            s.character.slug,
            s.title,
            s.provider,
            s.model,
            f"{counts[s.id]:,}",
            str(s.head_image_id or "-"),
        ]
        for s in sessions
    ]
    print_table(columns, rows)


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
    hidden = studio.hidden_counts([found])[found.id]
    images: Iterable[Image]
    if everything:
        images, folded = studio.iter_session_images(found), 0  # a page at a time
    else:
        recent = studio.recent_images(found, limit)
        images, folded = recent, max(total - len(recent), 0)
    if json_out:
        head = {
            **found.to_dict(),
            "image_count": total,
            "status_counts": counts,
            "hidden_images": hidden,
        }
        _write_json_with_images(head, _with_references(studio, images))
        return

    console.print(f"[bold]{found.slug}[/bold] (id {found.id}) — {found.title or 'untitled'}")
    console.print(f"character: {found.character.slug}")
    members = found.members
    if members:
        console.print(f"cast: {_cast_line(found.character, members)}", markup=False)
    settings = f"provider: {found.provider}  model: {found.model}"
    console.print(
        settings + (f"  {inline_fields(found.params)}" if found.params else ""), markup=False
    )
    console.print(f"head: #{found.head_image_id}")
    console.print(_summary(total, counts))
    if hidden:
        console.print(
            f"  [dim]{hidden:,} hidden (onmodel images {found.slug} --hidden)[/dim]",
            markup=True,
        )
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


def _with_references(studio: Studio, images: Iterable[Image]) -> Iterator[dict[str, Any]]:
    """Each image's record, the references and casts of a chunk of images read for the whole
    chunk (a query or two each), never per image."""
    source = iter(images)
    while chunk := list(islice(source, PRINT_CHUNK)):
        references = studio.references_of(chunk)
        casts = image_casts(chunk)
        yield from (image.to_dict(references[image.id], casts[image.id]) for image in chunk)


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


@app.command("cast")
def cast(
    what: Annotated[
        list[str] | None,
        typer.Argument(
            help="SESSION: list its cast (default: the current session's). add NAME...: add "
            "characters, creatures, props or sets. remove NAME: take one out.",
            show_default=False,
        ),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "--session", "-s", help="The session whose cast to change (default: the current)."
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """A session's cast: its lead, then the members its shots may show (--with) or take
    place in (--set), each with its kind and whether it has an anchor to be drawn from; add
    and remove change it (the current session's, or --session's)."""
    action, *names = what or [""]
    if action not in ("add", "remove"):
        listed = what or []
        if len(listed) > 1 or (listed and session is not None):
            raise UsageError(
                "name one session to list its cast (onmodel session cast SESSION); to change "
                "it: onmodel session cast add|remove NAME [--session SESSION]"
            )
        _print_cast(open_studio(), listed[0] if listed else session, json_out=json_out)
        return
    studio = open_studio()
    found = studio.session(session)
    if action == "add":
        if not names:
            raise UsageError("name who to add: onmodel session cast add NAME... [--session S]")
        added = studio.add_to_cast(found, names)
        report = (
            f"added to {found.slug}: {', '.join(m.slug for m in added)}"
            if added
            else f"nothing added: already in the cast of {found.slug}"
        )
    else:
        if len(names) != 1:
            raise UsageError("name one member to remove: onmodel session cast remove NAME")
        gone = studio.remove_from_cast(found, names[0])
        report = f"removed from {found.slug}: {gone.slug} (the pictures it is in keep it)"
    if json_out:
        _print_cast(studio, found.id, json_out=True)
        return
    console.print(report, markup=False)
    console.print(f"cast: {_cast_line(found.character, found.members)}", markup=False)


def _print_cast(studio: Studio, session: str | int | None, *, json_out: bool) -> None:
    """The cast as a table (or JSON): the lead first, then the members in the order they
    were added; a member whose anchor has no picture yet (pending, failed), or that is
    hidden, cannot be in a shot, and the listing says so."""
    found = studio.session(session)
    cast = found.cast
    ids = [m.anchor_image_id for m in cast if m.anchor_image_id is not None]
    anchors = studio.lookups.images_by_id(ids)  # one query for the whole cast

    def anchor(member: Character) -> Image | None:
        key = member.anchor_image_id
        return anchors.get(key) if key is not None else None

    rows = [
        (member, "lead" if i == 0 else "member", anchor(member)) for i, member in enumerate(cast)
    ]
    from onmodel.presentation import unusable  # here: `onmodel --help` loads no database

    why_not = [unusable(member, image) for member, _, image in rows]
    if json_out:
        print_json(
            [
                {
                    **member.to_dict(),
                    "role": role,
                    "hidden": member.hidden_at is not None,
                    "anchor_status": image.status if image else None,
                    "ready": not reason,
                    "why_not": reason or None,
                }
                for (member, role, image), reason in zip(rows, why_not, strict=True)
            ]
        )
        return
    console.print(f"cast of {found.slug}:", markup=False)
    columns = [
        Column("slug", identifier=True),
        Column("role"),
        Column("kind", identifier=True),
        Column("anchor"),
        Column("name", drop=1),
    ]
    print_table(
        columns,
        [
            [
                member.slug,
                role if member.hidden_at is None else f"{role}, hidden",
                member.kind,
                _anchor_cell(image),
                member.name,
            ]
            for member, role, image in rows
        ],
    )
    for (member, _, _), reason in zip(rows, why_not, strict=True):
        if reason:
            console.print(f"{member.slug} cannot be in a shot yet: {reason}", markup=False)
    if len(rows) == 1:
        console.print(
            f"add more: onmodel session cast add NAME... --session {found.slug}", markup=False
        )


def _anchor_cell(image: Image | None) -> str:
    """``#3``, or why there is no picture to draw from: ``#3 pending``, ``none yet``."""
    if image is None:
        return "none yet"
    return f"#{image.id}" if image.succeeded else f"#{image.id} {image.status}"


def _cast_line(lead: Character, members: Iterable[Character]) -> str:
    """``mia (lead), rin, max (creature), bedroom (set)``: a character's kind goes unsaid."""
    named = [f"{lead.slug} (lead)"]
    named += [m.slug if m.kind == "character" else f"{m.slug} ({m.kind})" for m in members]
    return ", ".join(named)


@app.command("use")
def use(session: Annotated[str, typer.Argument(help="Slug or id.")]) -> None:
    """Make SESSION the current one: shots without --session go there."""
    found = open_studio().use_session(session)
    console.print(f"current session: [bold]{found.slug}[/bold]")


@app.command("rename")
def rename(
    session: SessionArgument,
    title: Annotated[str | None, typer.Option("--title", help="Its new title.")] = None,
    slug: Annotated[str | None, typer.Option("--slug", help="Its new short name.")] = None,
) -> None:
    """Give a session a new title or slug; the current session follows it."""
    found = open_studio().rename_session(session, title=title, slug=slug)
    console.print(f"session {found.slug}: {found.title or 'untitled'}", markup=False)


@app.command("set")
def set_(
    session: SessionArgument,
    provider: Annotated[
        str | None, typer.Option(help="Who draws its shots (see: onmodel providers).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Image model for its next shots.")] = None,
    size: Annotated[str | None, typer.Option(help="Default size, e.g. 1024x1536.")] = None,
    quality: Annotated[str | None, typer.Option(help="Default quality.")] = None,
    param: ParamOption = None,
) -> None:
    """Change the provider, model or defaults of a session's next shots (checked as
    `session new` checks them); its images keep the ones they were made with. An empty
    --param KEY= removes a default."""
    params: dict[str, Any] = {
        key: None if value == "" else value
        for key, value in parse_params(param, {"size": size, "quality": quality}).items()
    }
    found = open_studio().update_session(session, provider=provider, model=model, params=params)
    console.print(
        f"session {found.slug}: {found.provider}, {found.model}"
        + "".join(f", {key} {value}" for key, value in found.params.items()),
        markup=False,
    )


@app.command("head")
def head(
    image: Annotated[str, typer.Argument(help="The image the next shot continues from.")],
    session: Annotated[
        str | None,
        typer.Option(
            "--session",
            "-s",
            help="Slug or id (default: the image's session; for an anchor, the current one).",
        ),
    ] = None,
) -> None:
    """Move a session's head: its next shot continues from IMAGE (succeeded, in its lineage)."""
    studio = open_studio()
    found = studio.image(image)
    target = session if session is not None else found.session_id
    moved = studio.move_head(target if target is not None else studio.session(), found)
    console.print(f"session {moved.slug}: head #{moved.head_image_id}", markup=False)


@app.command("hide")
def hide(session: SessionArgument) -> None:
    """Hide (delete) a session and its images; onmodel purge removes them for good."""
    found = open_studio().hide_session(session)
    console.print(
        f"hidden: session {found.slug} (onmodel session unhide {found.slug} brings it back)",
        markup=False,
    )


app.command("delete", help="Delete a session: the same as hide, until onmodel purge.")(hide)


@app.command("unhide")
def unhide(session: SessionArgument) -> None:
    """Show a hidden session again."""
    found = open_studio().unhide_session(session)
    console.print(f"shown again: session {found.slug}", markup=False)
