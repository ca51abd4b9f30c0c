"""Printing for the CLI: rich for people, JSON for scripts, one line on stderr for errors."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Plain ``print`` so that JSON is never wrapped or styled by rich."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def one_line(message: object) -> str:
    return " ".join(str(message).split())


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {one_line(message)}", markup=True)
