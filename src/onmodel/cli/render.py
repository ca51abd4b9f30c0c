"""Shared text renderings of images and lineages, so every command shows them the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from onmodel.limits import escape_controls
from onmodel.lineage import Fold, Row, View, cast_mark, image_casts, with_images
from onmodel.status import ImageStatus, status_mark

if TYPE_CHECKING:
    from rich.console import Console

    from onmodel.handles import Checked, Image
    from onmodel.studio.members import ShotCast

STATUS_COLOURS: dict[str, str] = {ImageStatus.SUCCEEDED: "green", ImageStatus.FAILED: "red"}
LINES_PER_PRINT = 500  # a console call per line costs more than the line itself

TONE_STYLES = {"ok": "green", "drift": "bold red", "failed": "yellow", "pending": "dim"}
"""How a check's badge is coloured (``checkview.CheckBadge.tone``), wherever it is printed."""


def describe_image_line(image: Image) -> str:
    size = f" {image.width}x{image.height}" if image.width else ""
    where = f" {image.stored_at}" if image.stored_at else ""
    error = f" — {image.error_message}" if image.error_message else ""
    mark = status_mark(image.status)
    return f"#{image.id} {mark} {image.kind} {image.label!r}{size}{where}{error}"


def flat_fields(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A record's mapping as ``(name, text)`` pairs a person reads: nested mappings as dotted
    names (``input_tokens_details.image_tokens``), lists in brackets (their mappings as
    ``name=value`` words), nothing as ``-``."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            pairs.extend(flat_fields(value, f"{name}.") or [(name, "-")])
        elif isinstance(value, list | tuple):
            pairs.append((name, "[" + ", ".join(map(_item_text, value)) + "]"))
        else:
            pairs.append((name, "-" if value is None else str(value)))
    return pairs


def _item_text(value: object) -> str:
    """A list's item: a mapping (an input image's role and digest) as ``role=anchor
    sha256=…`` words, never a Python repr."""
    if isinstance(value, Mapping):
        return " ".join(f"{name}={text}" for name, text in flat_fields(value)) or "-"
    return str(value)


def inline_fields(data: Mapping[str, Any] | None) -> str:
    """``size=1024x1024, quality=low`` for values that are words or numbers (parameters,
    usage); ``-`` when there are none."""
    return ", ".join(f"{name}={text}" for name, text in flat_fields(data or {})) or "-"


def print_field(console: Console, name: str, value: object) -> None:
    """``name: value`` on one line; a mapping (a request's free text) one indented line per
    field. Printed as plain text: a value such as ``[red]x`` shows as typed."""
    from rich.text import Text

    label = Text(f"{name}:", style="bold")
    if isinstance(value, Mapping) and value:
        console.print(label)
        for key, text in flat_fields(value):
            console.print(Text(escape_controls(f"  {key}: {text}")), soft_wrap=True)
        return
    shown = "-" if isinstance(value, Mapping) else str(value)
    console.print(Text.assemble(label, " ", escape_controls(shown)), soft_wrap=True)


Piece = tuple[str, str]  # text, and its rich style ("" for none)


@dataclass(frozen=True)
class TreeEntry:
    """An image as a line of a tree shows it: with its newest check and who is in it."""

    checked: Checked
    cast: ShotCast

    @property
    def image(self) -> Image:
        return self.checked.image


def tree_entries(
    load: Callable[[list[int]], Mapping[int, Image]],
) -> Callable[[list[int]], dict[int, TreeEntry]]:
    """``load`` with each chunk's newest checks and casts read for the whole chunk (a query
    for the checks, two for the casts), never per line: what a tree streams its lines
    from."""
    from onmodel.handles import with_latest_checks  # here: `onmodel --help` stays light

    def loaded(ids: list[int]) -> dict[int, TreeEntry]:
        images = load(ids)
        casts = image_casts(images.values())
        checked = with_latest_checks(images)
        return {key: TreeEntry(found, casts[key]) for key, found in checked.items()}

    return loaded


def tree_line(lead: str, entry: TreeEntry, head_id: int | None) -> list[Piece]:
    """One image's line of a tree as styled plain pieces, never parsed as markup: a label
    such as ``[red]x`` is shown as typed, a control character as its escape, and 100,000
    lines cost no markup parsing. Who joined its character (``+ Rin, Max · in Bedroom``),
    its newest check's badge and the pick of a retake loop follow, so a shot of several
    and a drifted take stand out in the lineage."""
    found = entry.checked
    image = found.image
    source = f"{image.provider}/{image.model}" if image.model else image.provider
    line = [
        (lead, ""),
        (f"#{image.id} {status_mark(image.status)}", STATUS_COLOURS.get(image.status, "yellow")),
        (f" {image.kind}: {escape_controls(image.label)} ", ""),
        (escape_controls(source), "dim"),
    ]
    if mark := cast_mark(entry.cast.everyone, image.character_id):
        line += [("  ", ""), (escape_controls(mark), "cyan")]
    if found.check is not None:
        from onmodel.checkview import badge  # loaded once a line has a check to show

        shown = badge(found.check)
        line += [("  ", ""), (escape_controls(shown.text), TONE_STYLES[shown.tone])]
    if image.picked_at is not None:
        line.append((" · pick", "bold magenta"))
    if image.id == head_id:
        line.append((" ← head", "bold cyan"))
    return line


def print_lineage(
    console: Console,
    view: View,
    load: Callable[[list[int]], Mapping[int, Image]],
    head_id: int | None,
    hint: Callable[[Fold], str],
) -> int:
    """Draw ``view`` a line per image (or fold), streamed: images are loaded (with their
    newest checks and casts, a few queries per chunk) and lines printed a few hundred at a
    time, whatever the size of the series. ``hint`` says how to open a fold. Returns how
    many images were drawn.

    A series is one column with no guides, and only branches are indented (see
    :class:`~onmodel.lineage.Row`): a line costs its branch depth. (Rich's own ``Tree`` nests
    a renderable per level and draws guides for every level, which at 100,000 shots costs
    nodes × depth.)
    """
    drawn = 0
    pending: list[list[Piece]] = []
    rows = with_images(view.rows(), _row_key, tree_entries(load))
    for lead, row, found in _leads(rows):
        if isinstance(row.key, Fold):
            line = [(lead, ""), (f"{row.key.describe()} — {hint(row.key)}", "dim")]
        elif found is None:
            line = [(lead, ""), (f"#{row.key} (gone)", "dim")]
        else:
            drawn += 1
            line = tree_line(lead, found, head_id)
        pending.append(line)
        if len(pending) >= LINES_PER_PRINT:
            _print_lines(console, pending)
            pending = []
    _print_lines(console, pending)
    return drawn


def _print_lines(console: Console, lines: list[list[Piece]]) -> None:
    """Lines through rich where it styles them; as plain text where rich would print them
    plain anyway (a pipe, a file, NO_COLOR), at a fraction of rich's cost per line."""
    from rich.text import Text

    if not lines:
        return
    if console.color_system is None:
        console.file.write("".join("".join(t for t, _ in line) + "\n" for line in lines))
    else:
        text = Text("\n").join(Text.assemble(*line) for line in lines)
        console.print(text, soft_wrap=True)


def _row_key(row: Row) -> int | Fold:
    return row.key


def _leads(
    rows: Iterator[tuple[Row, TreeEntry | None]],
) -> Iterator[tuple[str, Row, TreeEntry | None]]:
    """Each row with the guides drawn before it: a branch opens under ``├──`` and its lines
    keep a ``│`` for every column that goes on below them."""
    for row, found in rows:
        if row.depth == 0:
            lead = ""
        elif row.opens:
            lead = "│   " * (row.depth - 1) + "├── "
        else:
            lead = "│   " * row.depth
        yield lead, row, found
