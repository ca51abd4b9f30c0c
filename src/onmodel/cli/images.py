"""``onmodel images``: a filterable listing of images, newest first, at any size.

Images are read a page at a time from the database (``Studio.images``) and printed, or
written as JSON, as they come: listing 100,000 images holds one page in memory.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from itertools import islice
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from onmodel.cli.context import open_studio
from onmodel.cli.output import console
from onmodel.limits import MAX_ID, escape_controls
from onmodel.lineage import cast_mark
from onmodel.status import status_mark

if TYPE_CHECKING:
    from onmodel.studio.listing import ListedImage

LISTED = 50  # images listed without --limit: a couple of screens
PRINT_CHUNK = 500  # lines per print call


def images(
    session: Annotated[
        str | None, typer.Argument(help="Only this session's (slug or id; default: all).")
    ] = None,
    starred: Annotated[bool, typer.Option("--starred", help="Only starred images.")] = False,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only failed or interrupted shots (to retry).")
    ] = False,
    tag: Annotated[str | None, typer.Option("--tag", help="Only images with this tag.")] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", help="Only images whose request or note holds this text."),
    ] = None,
    hidden: Annotated[
        bool, typer.Option("--hidden", help="Only hidden images (what onmodel purge removes).")
    ] = False,
    with_: Annotated[
        list[str] | None,
        typer.Option(
            "--with",
            help="Only pictures showing this character, creature, prop or set, in any "
            "session (repeat it: pictures showing all of them).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_ID, help="How many to list at most.")
    ] = LISTED,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON list for scripts (streamed).")
    ] = False,
) -> None:
    """List images, newest first: every shown session's and character's, or one session's,
    narrowed by the filters given (--with max: every picture Max is in)."""
    found = open_studio().images(
        session,
        starred=starred,
        failed=failed,
        tag=tag,
        search=search,
        hidden=hidden,
        limit=limit + 1,  # one more: whether the listing was cut
        with_=with_ or (),
    )
    listed = islice(found, limit)
    if json_out:
        _write_json(listed)
        return
    lines = (_line(item) for item in listed)
    shown = 0
    while page := list(islice(lines, PRINT_CHUNK)):
        console.print("\n".join(page), markup=False)
        shown += len(page)
    if not shown:
        console.print("no images match")
    elif next(found, None) is not None:
        again = [*([session] if session else []), *(["--starred"] if starred else [])]
        again += [*(["--failed"] if failed else []), *(["--hidden"] if hidden else [])]
        again += [*(["--tag", tag] if tag else []), *(["--search", search] if search else [])]
        again += [word for name in with_ or () for word in ("--with", name)]
        more = shlex.join(["onmodel", "images", *again, "--limit", str(min(limit * 2, MAX_ID))])
        console.print(Text(f"… more: {more} (newest first)", style="dim"))


def _line(item: ListedImage) -> str:
    """``#12 ✓ week shot 'waving' + Max · in Bedroom ★ 4/5 [cover, keeper] — note``: what a
    person scans for; who joined its character, marked as a tree marks it."""
    image = item.image
    parts = [f"#{image.id} {status_mark(image.status)}", item.session or "(anchor)", image.kind]
    parts.append(repr(image.label))
    if mark := cast_mark(item.cast.everyone, image.character_id):
        parts.append(mark)
    if image.starred:
        parts.append("★")
    if image.rating:
        parts.append(f"{image.rating}/5")
    if item.tags:
        parts.append(f"[{', '.join(item.tags)}]")
    if item.hidden_at is not None:
        parts.append("(hidden)")
    if image.note:
        parts.append(f"— {' '.join(image.note.split())}")
    return escape_controls(" ".join(parts))


def _write_json(items: Iterable[ListedImage]) -> None:
    """A JSON list written an image at a time, never the whole listing at once."""
    from onmodel.lineage import iter_json

    out = sys.stdout
    written = 0
    for item in items:
        text = "".join(iter_json(item.to_dict())).replace("\n", "\n  ")
        out.write(("," if written else "[") + "\n  " + text)
        written += 1
    out.write("\n]\n" if written else "[]\n")
