"""Colours as a person compares them: CIELAB and CIEDE2000, from scikit-image.

The palette check and ``character describe`` both ask "is this the same colour?", and the
answer must match what a viewer sees, not what RGB distance says: CIEDE2000 in Lab is the
standard for that, so the formula comes from a maintained library rather than being written
here again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab

RGB = tuple[int, int, int]
Floats = NDArray[np.float64]


def to_lab(rgb: NDArray[np.uint8] | RGB) -> Floats:
    """Lab of 8-bit sRGB colours: one colour, or an array of them (last axis: r, g, b)."""
    array = np.asarray(rgb, dtype=np.float64) / 255.0
    return np.asarray(rgb2lab(array), dtype=np.float64)


def to_rgb(lab: Floats) -> RGB:
    """The 8-bit sRGB colour of one Lab colour (clipped into the gamut)."""
    rgb = np.clip(lab2rgb(np.asarray(lab, dtype=np.float64)), 0.0, 1.0)
    red, green, blue = (round(float(c) * 255) for c in rgb)
    return (red, green, blue)


def delta_e(first: Floats, second: Floats) -> Floats:
    """CIEDE2000 between Lab colours (broadcast)."""
    difference = deltaE_ciede2000(first, second)  # type: ignore[no-untyped-call]
    return np.asarray(difference, dtype=np.float64)


def chroma(lab: Floats) -> float:
    """How colourful a Lab colour is (0: a grey)."""
    return float(np.hypot(lab[1], lab[2]))


def hex_of(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class ColourTable:
    """The distinct colours of some pixels, each once: CIEDE2000 is asked per colour, not per
    pixel, which for a drawing's few flat fills is thousands of times less work.

    ``inverse`` maps each pixel to its row in ``rgb``/``lab``; ``counts`` is how many pixels
    have each colour.
    """

    rgb: NDArray[np.uint8]
    lab: Floats
    counts: NDArray[np.int64]
    inverse: NDArray[np.int64]

    @classmethod
    def of(cls, pixels: NDArray[np.uint8]) -> ColourTable:
        """``pixels`` is an (n, 3) array of 8-bit RGB."""
        flat = pixels.reshape(-1, 3).astype(np.int64)
        packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]  # one number sorts fast
        unique, inverse, counts = np.unique(packed, return_inverse=True, return_counts=True)
        rgb = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=1).astype(np.uint8)
        return cls(
            rgb=rgb,
            lab=to_lab(rgb),
            counts=counts.astype(np.int64),
            inverse=inverse.reshape(-1).astype(np.int64),
        )

    def near(self, lab: Floats, limit: float) -> NDArray[np.bool_]:
        """Which pixels lie within ``limit`` CIEDE2000 of ``lab``."""
        close = delta_e(self.lab, np.broadcast_to(lab, self.lab.shape))
        return np.asarray((close <= limit)[self.inverse], dtype=np.bool_)


def median_lab(lab: Floats) -> Floats:
    """The per-channel median: a fill's colour, unmoved by the outline pixels at its edge."""
    return np.asarray(np.median(lab.reshape(-1, 3), axis=0), dtype=np.float64)


_MAX_SEEDS = 64  # a photo has tens of thousands of distinct colours; its main ones come first


def dominant_colours(
    pixels: NDArray[np.uint8], *, count: int = 6, merge: float = 10.0, min_share: float = 0.02
) -> list[tuple[RGB, float]]:
    """The main colours of some pixels with their share, largest first.

    Colours within ``merge`` CIEDE2000 of a larger one join it (a shaded fill, JPEG noise), so
    a flat cartoon gives its fills and a photo its broad areas. Greedy on the distinct colours
    by how common they are: deterministic, and no clustering library needed.
    """
    flat = pixels.reshape(-1, 3)
    if not len(flat):
        return []
    table = ColourTable.of(flat)
    left = np.ones(len(table.counts), dtype=bool)
    order = np.argsort(-table.counts, kind="stable")
    total = float(table.counts.sum())
    found: list[tuple[RGB, float]] = []
    for seed in order[:_MAX_SEEDS]:
        if not left[seed]:
            continue
        close = delta_e(table.lab, np.broadcast_to(table.lab[seed], table.lab.shape)) <= merge
        members = close & left
        left &= ~members
        share = float(table.counts[members].sum()) / total
        if share < min_share:
            continue
        weights = table.counts[members].astype(np.float64)
        centre = (table.lab[members] * weights[:, None]).sum(axis=0) / weights.sum()
        found.append((to_rgb(centre), share))
    found.sort(key=lambda item: -item[1])
    return found[:count]
