"""What a FLUX.2 request may carry beyond onmodel's table vocabulary, and how it is sent.

Ranges are BFL's API reference for the FLUX.2 endpoints (read 2026-12-02): ``seed`` an
integer, ``safety_tolerance`` 0 (strictest) to 5, ``prompt_upsampling`` a boolean, and on
[flex] only ``steps`` 1-50 and ``guidance`` 1.5-10. A parameter FLUX has no use for is
refused rather than dropped, so ``--param sed=42`` is a one-line error, not a shot that
silently ignores the seed.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

OWN_PARAMS = ("seed", "safety_tolerance", "prompt_upsampling", "steps", "guidance")
"""What FLUX takes beyond the table's parameters (``FluxProvider.own_params``); any other is
refused. ``steps`` and ``guidance`` on [flex] only."""

SEED_LIMIT = 2**64
SAFETY_RANGE = (0, 5)
STEPS_RANGE = (1, 50)
GUIDANCE_RANGE = (1.5, 10.0)
FLEX_ONLY = ("steps", "guidance")
MIN_SIDE = 64
"""BFL: width and height at least 64 px (the table's min_pixels cannot say it per side)."""
DEFAULT_OUTPUT_FORMAT = "png"
"""onmodel keeps pictures lossless by default (BFL's own default is jpeg)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def flux_param_problems(params: Mapping[str, Any]) -> list[str]:
    """One line per FLUX parameter that is out of shape or range (an unknown one is refused
    by :meth:`Provider.param_problems`, from ``own_params``)."""
    problems: list[str] = []
    seed = params.get("seed")
    if seed is not None and not (_is_int(seed) and 0 <= seed < SEED_LIMIT):
        problems.append(f"seed must be a whole number from 0 to 2^64-1, not {seed!r}")
    tolerance = params.get("safety_tolerance")
    low, high = SAFETY_RANGE
    if tolerance is not None and not (_is_int(tolerance) and low <= tolerance <= high):
        problems.append(
            f"safety_tolerance must be a whole number from {low} (strictest) to {high}, "
            f"not {tolerance!r}"
        )
    upsampling = params.get("prompt_upsampling")
    if upsampling is not None and not isinstance(upsampling, bool):
        problems.append(f"prompt_upsampling must be true or false, not {upsampling!r}")
    steps = params.get("steps")
    if steps is not None and not (_is_int(steps) and STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]):
        problems.append(f"steps must be a whole number from 1 to 50 (flux-2-flex), not {steps!r}")
    guidance = params.get("guidance")
    if guidance is not None and not (
        _is_number(guidance) and GUIDANCE_RANGE[0] <= guidance <= GUIDANCE_RANGE[1]
    ):
        problems.append(f"guidance must be a number from 1.5 to 10 (flux-2-flex), not {guidance!r}")
    dims = _dims(params.get("size"))
    if dims is not None and min(dims) < MIN_SIDE:
        problems.append(f"size {params['size']}: each side must be at least {MIN_SIDE} px")
    return problems


def _dims(size: object) -> tuple[int, int] | None:
    from onmodel.capabilities import parse_size  # the table module is not needed to list providers

    return parse_size(size) if isinstance(size, str) else None


def request_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON fields besides the prompt and the images, in a stable order.

    A seed is always sent (a random one when none is asked for): the record then says which
    seed made the picture even if the answer does not, so a shot can be made again.
    """
    options: dict[str, Any] = {}
    dims = _dims(params.get("size"))
    if dims is not None:
        options["width"], options["height"] = dims
    seed = params.get("seed")
    options["seed"] = seed if _is_int(seed) else secrets.randbelow(2**32)
    for name in ("safety_tolerance", "prompt_upsampling"):
        if params.get(name) is not None:
            options[name] = params[name]
    for name in FLEX_ONLY:
        if params.get(name) is not None:
            options[name] = params[name]
    options["output_format"] = params.get("output_format") or DEFAULT_OUTPUT_FORMAT
    return options


def flex_only_problem(model: str, params: Mapping[str, Any]) -> str | None:
    """``steps``/``guidance`` exist on [flex] only; the other endpoints refuse them."""
    asked = [name for name in FLEX_ONLY if params.get(name) is not None]
    if asked and not model.startswith("flux-2-flex"):
        return f"{' and '.join(asked)} work only on flux-2-flex, not {model}"
    return None


def input_field(index: int) -> str:
    """BFL's name for the image at ``index`` (0-based): input_image, input_image_2, ..."""
    return "input_image" if index == 0 else f"input_image_{index + 1}"
