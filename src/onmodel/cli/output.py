"""Printing for the CLI: rich for people, JSON for scripts, one line on stderr for errors."""

from __future__ import annotations

import json
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
    """Plain ``print`` so that JSON is never wrapped or styled by rich."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {one_line(message)}", markup=True)
