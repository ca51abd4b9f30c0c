"""Printing for the CLI: rich for people, JSON for scripts, one line on stderr for errors."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
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
