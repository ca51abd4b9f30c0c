"""``--param KEY=VALUE``: any model or provider parameter, for the ones no option names.

Each provider takes parameters of its own (a FLUX or ComfyUI ``seed``, a ComfyUI
``workflow``, Gemini's ``image_size``), and the core CLI names none of them: the provider and
the model's table check them like ``--size`` before anything is recorded.
"""

from __future__ import annotations

import math
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


def _scalar(raw: str) -> Any:
    """A number or true/false as such; anything else (a date, a list, ``inf``) as the text
    written, so every parameter stays a plain JSON value."""
    from onmodel.yamlload import safe_load

    try:
        value = safe_load(raw) if raw.strip() else ""
    except Exception:
        return raw
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return raw
