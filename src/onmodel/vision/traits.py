"""One sheet colour, found on a subject: the measurement the palette check compares.

A sheet says "hair #c9642b", but the anchor is what every shot must match, so the baseline is
the colour the anchor's subject actually shows near the sheet's (a painted fill, a lit photo),
together with how much of the character it covers and where, top to bottom. A shot keeps the
trait when that colour still covers a comparable share of its character in the same band.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from onmodel.vision.colours import (
    RGB,
    ColourTable,
    Floats,
    delta_e,
    dominant_colours,
    median_lab,
    to_lab,
    to_rgb,
)
from onmodel.vision.subject import Subject, find_subject, load_rgb

SHEET_RADIUS = 20.0
"""How far (CIEDE2000) the anchor's colour may lie from the sheet's and still be that trait:
the sheet is written by hand or proposed, the anchor is painted by a model."""
MATCH_RADIUS = 9.0
"""How far a shot's colour may lie from the anchor's and still be the same colour."""
_MIN_SHARE = 0.002  # of the character's pixels: less is a stray pixel, not a visible trait
_BAND_MARGIN = 0.12  # of the character's height, around where the anchor shows a trait


@dataclass(frozen=True)
class Baseline:
    """A trait as the anchor shows it: colour, share of the character, vertical band."""

    lab: Floats
    share: float
    band: tuple[float, float]

    @property
    def rgb(self) -> RGB:
        return to_rgb(self.lab)


@dataclass(frozen=True)
class Found:
    """A trait looked for in a shot: ``kept`` is its share over the anchor's (1.0: as much),
    ``lab`` the colour of what matched (None: nothing did), ``new`` the band's main colour that
    is none of the anchor's: what the trait became, if it drifted."""

    kept: float
    lab: Floats | None
    new: Floats | None


class Picture:
    """An image's subject with its colours indexed once, for the many traits asked of it."""

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        rows, _ = np.nonzero(subject.mask)
        self.pixels: NDArray[np.uint8] = subject.rgb[subject.mask]
        self.table = ColourTable.of(self.pixels)
        self.rows = rows.astype(np.float64)
        self.top, self.height = _extent(self.rows)

    @classmethod
    def of(cls, path: Path) -> Picture:
        return cls(find_subject(load_rgb(path)))

    def near(self, lab: Floats, radius: float, *, lightness: float = 1.0) -> NDArray[np.bool_]:
        if not len(self.pixels):
            return np.zeros(0, dtype=bool)
        return self.table.near(lab, radius, lightness=lightness)

    def rescale(self, known: list[Floats]) -> None:
        """Measure heights on the pixels of the character's known colours only, so a pet or a
        building the subject mask took in does not change what "the top" of it is."""
        hits = np.zeros(len(self.pixels), dtype=bool)
        for lab in known:
            hits |= self.near(lab, MATCH_RADIUS)
        if hits.sum() >= 10:
            self.top, self.height = _extent(self.rows[hits])

    def relative(self, hits: NDArray[np.bool_]) -> NDArray[np.float64]:
        return np.asarray((self.rows[hits] - self.top) / self.height, dtype=np.float64)

    def in_band(self, band: tuple[float, float]) -> NDArray[np.bool_]:
        where = (self.rows - self.top) / self.height
        return np.asarray((where >= band[0]) & (where <= band[1]), dtype=bool)

    def baseline(self, colour: RGB, taken: list[Floats]) -> Baseline | None:
        """The trait ``colour`` names as this (anchor) picture shows it (None: not shown):
        of the fills near the sheet's colour, the closest one, other than those an earlier
        trait took (``taken``), so a "red hair clip" is not read off a red jacket."""
        sheet = to_lab(colour)
        close = self.near(sheet, SHEET_RADIUS)
        for lab in taken:
            close &= ~self.near(lab, MATCH_RADIUS)
        if close.sum() < max(4, _MIN_SHARE * len(self.pixels)):
            return None
        fills = dominant_colours(self.pixels[close], count=4, merge=MATCH_RADIUS, min_share=0.05)
        lab = min((to_lab(rgb) for rgb, _ in fills), key=lambda fill: distance(fill, sheet))
        hits = self.near(lab, MATCH_RADIUS)
        where = self.relative(hits)
        band = (
            float(np.percentile(where, 3)) - _BAND_MARGIN,
            float(np.percentile(where, 97)) + _BAND_MARGIN,
        )
        hits_lab = self.table.lab[self.table.inverse[hits]]
        return Baseline(lab=median_lab(hits_lab), share=self.share(hits), band=band)

    def share(self, hits: NDArray[np.bool_]) -> float:
        """Pixels over the character's height squared: a share that does not grow when the
        subject mask also took in a prop or a patch of background beside the character."""
        return float(hits.sum()) / (self.height * self.height)

    def find(
        self, base: Baseline, known: list[Floats], *, radius: float, lightness: float = 1.0
    ) -> Found:
        """Look for ``base`` in its band; when it is missing, report the band's main colour
        that is none of the anchor's (``known``), which is what the trait became."""
        band = self.in_band(base.band)
        hits = self.near(base.lab, radius, lightness=lightness) & band
        kept = self.share(hits) / base.share if base.share else 0.0
        lab = median_lab(self.table.lab[self.table.inverse[hits]]) if hits.any() else None
        other = band.copy()
        for colour in known:
            other &= ~self.near(colour, MATCH_RADIUS)
        colours = dominant_colours(self.pixels[other], count=1, merge=MATCH_RADIUS)
        return Found(kept=kept, lab=lab, new=to_lab(colours[0][0]) if colours else None)


def distance(first: Floats, second: Floats) -> float:
    return float(delta_e(first, second))


def _extent(rows: NDArray[np.float64]) -> tuple[float, float]:
    """Top and height of a set of rows, ignoring the outermost 0.5% (stray pixels)."""
    if not len(rows):
        return 0.0, 1.0
    top = float(np.percentile(rows, 0.5))
    bottom = float(np.percentile(rows, 99.5))
    return top, max(1.0, bottom - top)
