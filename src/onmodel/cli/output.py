"""Printing for the CLI: rich for people, JSON for scripts, one line on stderr for errors."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from onmodel.limits import escape_controls


class SafeConsole(Console):
    """A console that shows control characters in printed strings as escapes.

    Every string rich prints (plain, in a table cell or a tree label) passes through
    ``render_str``, so this one override covers names, titles and prompts wherever they appear.
    """

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(escape_controls(text), **options)


console = SafeConsole(highlight=False, soft_wrap=True)
err_console = SafeConsole(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Plain text, never wrapped or styled by rich, and written piece by piece: the standard
    encoder recurses once per level, and a 100,000-shot chain is 100,000 levels deep."""
    from onmodel.lineage import dump_json

    dump_json(data, sys.stdout)


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def print_dim(text: str) -> None:
    """A side note (what a dry run would send) in a dim style, printed as typed: no markup."""
    console.print(Text(escape_controls(text), style="dim"), soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {one_line(message)}", markup=True)


@dataclass(frozen=True)
class Column:
    """A table column, and how it gives way when the terminal is narrow.

    No column cuts a word: each is at least as wide as its longest word and wraps at spaces.
    An ``identifier`` (a slug, an id, a model name: what the user types next) does not even
    wrap: it keeps the width of its longest line. ``drop`` columns (lowest first) are left
    out whole, and the table says so, when the table would not fit otherwise; a screen too
    narrow for what remains gets each row as ``header: value`` lines instead of a table.
    """

    header: str
    identifier: bool = False
    drop: int | None = None  # lower goes first; None: always shown


BORDER = 3  # a column's two padding spaces and its rule, in rich's default table
"""Plus one for the table's closing rule: what a table adds to its columns' widths."""


def print_table(columns: Sequence[Column], rows: Iterable[Sequence[str | Text]]) -> None:
    """Print ``rows`` as a table that fits the terminal (see :class:`Column`). Text cells
    are plain, never parsed as markup; a :class:`~rich.text.Text` cell carries its own
    style."""
    cells = [
        [cell if isinstance(cell, Text) else Text(escape_controls(cell)) for cell in row]
        for row in rows
    ]
    widths = [_least_width(column, [row[i] for row in cells]) for i, column in enumerate(columns)]
    shown = list(range(len(columns)))
    droppable = sorted(
        (i for i, column in enumerate(columns) if column.drop is not None),
        key=lambda i: columns[i].drop or 0,
    )

    def fits() -> bool:
        return sum(widths[i] + BORDER for i in shown) + 1 <= console.width

    while droppable and not fits():
        shown.remove(droppable.pop(0))
    if not fits():
        _print_records(columns, cells)
        return
    table = Table()
    for i in shown:
        column = columns[i]
        table.add_column(column.header, no_wrap=column.identifier, min_width=widths[i])
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    console.print(table)
    left_out = [column.header for i, column in enumerate(columns) if i not in shown]
    if left_out:
        note = f"left out at this width: {', '.join(left_out)} (a wider terminal, or --json)"
        console.print(Text(note, style="dim"), soft_wrap=False)  # wrapped to the screen


def _print_records(columns: Sequence[Column], cells: list[list[Text]]) -> None:
    """A screen too narrow for any table: each row as ``header: value`` lines, every column
    kept, wrapped at spaces to the screen's width."""
    for row in cells:
        for column, cell in zip(columns, row, strict=True):
            if not column.header:  # a marker column (the current session's *): itself alone
                if cell.plain:
                    console.print(cell)
                continue
            lead = Text(f"{column.header}: ", style="bold" if column.identifier else "dim")
            console.print(Text.assemble(lead, Text(" ").join(cell.split())), soft_wrap=False)
        console.print()


def _least_width(column: Column, cells: list[Text]) -> int:
    """The longest line of an identifier, or the longest word (header included)."""
    pieces = [column.header]
    for cell in cells:
        lines = cell.plain.splitlines()
        pieces.extend(lines if column.identifier else (w for ln in lines for w in ln.split()))
    return max(cell_len(piece) for piece in pieces)
