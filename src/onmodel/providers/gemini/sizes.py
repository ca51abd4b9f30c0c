"""onmodel's ``size: WIDTHxHEIGHT`` in Gemini's terms: an aspect ratio and a size class.

Gemini takes no pixel size: ``ImageConfig`` has ``aspect_ratio`` (one of
:data:`ASPECT_RATIOS`) and ``image_size`` (``1K``, ``2K`` or ``4K``). The model table lists
the pixel sizes each model draws, so a shot list written for OpenAI keeps its vocabulary; this
module is the one place that says which ratio and class a size means, for the request and for
the cost estimate alike. Nothing here needs the SDK.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from onmodel.capabilities import parse_size

__all__ = [
    "ASPECT_RATIOS",
    "IMAGE_SIZES",
    "estimate_size",
    "image_config",
    "image_size_of",
    "size_problems",
]

ASPECT_RATIOS: tuple[str, ...] = ("1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9")
"""``ImageConfig.aspect_ratio`` values the SDK (google-genai 3.6.1) documents."""

IMAGE_SIZES: tuple[str, ...] = ("1K", "2K", "4K")
"""``ImageConfig.image_size`` values; the model draws ``1K`` when none is sent."""

_CLASS_EDGE: Mapping[str, int] = {"1K": 1024, "2K": 2048, "4K": 4096}
"""The square of each size class: its output tokens are the class's (Google bills by class,
never by ratio), so the estimate prices a request at it."""

_LONG_EDGE_LIMITS: tuple[tuple[int, str], ...] = ((1600, "1K"), (3200, "2K"))


def _ratio_value(ratio: str) -> float:
    width, height = ratio.split(":")
    return int(width) / int(height)


def nearest_ratio(width: int, height: int) -> str:
    """The aspect ratio a size stands for: the nearest on a log scale (Google's 1K sizes are
    rounded to multiples of 16, so 864x1184 is 3:4 only approximately)."""
    target = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda ratio: abs(math.log(_ratio_value(ratio)) - target))


def image_size_of(width: int, height: int) -> str:
    """The size class a size belongs to, by its long edge."""
    long_edge = max(width, height)
    return next((name for limit, name in _LONG_EDGE_LIMITS if long_edge <= limit), "4K")


def size_problems(params: Mapping[str, Any]) -> list[str]:
    """What is wrong with the size parameters, one line each (the table has checked ``size``
    against the model's list already)."""
    problems: list[str] = []
    ratio, image_size = params.get("aspect_ratio"), params.get("image_size")
    if ratio is not None and ratio not in ASPECT_RATIOS:
        problems.append(
            f"aspect_ratio {ratio!r} is not one Gemini takes ({', '.join(ASPECT_RATIOS)})"
        )
    if image_size is not None and image_size not in IMAGE_SIZES:
        problems.append(
            f"image_size {image_size!r} is not one Gemini takes ({', '.join(IMAGE_SIZES)})"
        )
    return problems


def image_config(params: Mapping[str, Any]) -> dict[str, str]:
    """``ImageConfig`` fields for the params: what ``size`` says, refined by ``aspect_ratio``
    and ``image_size`` when given (a session's default size with a shot's ``image_size=4K``
    is that ratio at 4K); empty lets the model choose (``auto``).

    A size of the 1K class sends no ``image_size``: 1K is every model's default, and
    Gemini 2.5 Flash Image, which draws only 1K, need not be asked about a field it predates.
    """
    config: dict[str, str] = {}
    dims = parse_size(str(params.get("size") or "auto"))
    if dims is not None:
        config["aspect_ratio"] = nearest_ratio(*dims)
        if image_size_of(*dims) != "1K":
            config["image_size"] = image_size_of(*dims)
    for name in ("aspect_ratio", "image_size"):
        if params.get(name) is not None:
            config[name] = str(params[name])
    return config


def estimate_size(params: Mapping[str, Any]) -> str:
    """The size a request is priced at: the square of its size class (1K when unsaid)."""
    edge = _CLASS_EDGE[image_config(params).get("image_size", "1K")]
    return f"{edge}x{edge}"
