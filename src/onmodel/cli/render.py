"""Shared text renderings of images and lineages, so every command shows them the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from onmodel.lineage import Fold, Row, View, with_images
from onmodel.status import ImageStatus, status_mark

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from onmodel.handles import Image

STATUS_COLOURS: dict[str, str] = {ImageStatus.SUCCEEDED: "green", ImageStatus.FAILED: "red"}
LINES_PER_PRINT = 500  # a console call per line costs more than the line itself


def describe_image_line(image: Image) -> str:
    size = f" {image.width}x{image.height}" if image.width else ""
    where = f" {image.path}" if image.path else ""
    error = f" — {image.error_message}" if image.error_message else ""
    mark = status_mark(image.status)
    return f"#{image.id} {mark} {image.kind} {image.label!r}{size}{where}{error}"


def tree_label(image: Image, head_id: int | None) -> str:
    mark = status_mark(image.status)
    head = " [bold cyan]← head[/bold cyan]" if image.id == head_id else ""
    colour = STATUS_COLOURS.get(image.status, "yellow")
    extra = (
        f" [dim]{image.provider}/{image.model}[/dim]"
        if image.model
        else f" [dim]{image.provider}[/dim]"
    )
    return f"[{colour}]#{image.id} {mark}[/{colour}] {image.kind}: {image.label}{extra}{head}"


def print_lineage(
    console: Console,
    view: View,
    load: Callable[[list[int]], Mapping[int, Image]],
    head_id: int | None,
    hint: Callable[[Fold], str],
) -> int:
    """Draw ``view`` a line per image (or fold), streamed: images are loaded and lines
    printed a few hundred at a time, whatever the size of the series. ``hint`` says how to
    open a fold. Returns how many images were drawn.

    A series is one column with no guides, and only branches are indented (see
    :class:`~onmodel.lineage.Row`): a line costs its branch depth. (Rich's own ``Tree`` nests
    a renderable per level and draws guides for every level, which at 100,000 shots costs
    nodes × depth.)
    """
    from rich.text import Text

    drawn = 0
    pending: list[Text] = []
    for lead, row, image in _leads(with_images(view.rows(), _row_key, load)):
        if isinstance(row.key, Fold):
            line = Text.assemble(lead, (f"{row.key.describe()} — {hint(row.key)}", "dim"))
        elif image is None:
            line = Text.assemble(lead, (f"#{row.key} (gone)", "dim"))
        else:
            drawn += 1
            # The guides are plain text; the label is markup, and render_str is where the
            # CLI's console escapes control characters.
            line = Text.assemble(lead, console.render_str(tree_label(image, head_id)))
        pending.append(line)
        if len(pending) >= LINES_PER_PRINT:
            console.print(Text("\n").join(pending), soft_wrap=True)
            pending = []
    if pending:
        console.print(Text("\n").join(pending), soft_wrap=True)
    return drawn


def _row_key(row: Row) -> int | Fold:
    return row.key


def _leads(
    rows: Iterator[tuple[Row, Image | None]],
) -> Iterator[tuple[str, Row, Image | None]]:
    """Each row with the guides drawn before it: a branch opens under ``├──`` and its lines
    keep a ``│`` for every column that goes on below them."""
    for row, image in rows:
        if row.depth == 0:
            lead = ""
        elif row.opens:
            lead = "│   " * (row.depth - 1) + "├── "
        else:
            lead = "│   " * row.depth
        yield lead, row, image
