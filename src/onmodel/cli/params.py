"""``--param KEY=VALUE``: any model or provider parameter, for the ones no option names.

Each provider takes parameters of its own (a FLUX or ComfyUI ``seed``, a ComfyUI
``workflow``, Gemini's ``image_size``), and the core CLI names none of them: the provider and
the model's table check them like ``--size`` before anything is recorded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from onmodel.errors import UsageError

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="A model or provider parameter, KEY=VALUE (repeatable), e.g. seed=42 or "
        "workflow=portrait.json; numbers and true/false are read as such.",
    ),
]


def parse_params(
    values: Sequence[str] | None, named: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``["seed=42", "steps=30"]`` -> ``{"seed": 42, "steps": 30}``, merged with the options
    that name a parameter (``named``: ``--size``, ``--quality``), each given once."""
    found: dict[str, Any] = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param {item!r}: write KEY=VALUE, e.g. seed=42")
        if key in found:
            raise UsageError(f"--param {key} is given twice; keep one")
        found[key] = _scalar(raw)
    for key, value in (named or {}).items():
        if value is None or value == "":
            continue
        if key in found:
            raise UsageError(f"{key} is given twice (--{key} and --param {key}=...); keep one")
        found[key] = value
    return found


_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _scalar(raw: str) -> Any:
    """A whole number, a decimal number or true/false as such; anything else (or anything
    in quotes) as the text written (``16:9``, ``2026-01-01``, ``portrait.json``), never
    YAML 1.1's readings of it (``16:9`` is not the sexagesimal 969)."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]  # quoted: text, even when it looks like a number
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else text
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text
