"""One sheet colour, found on a subject: the measurement the palette check compares.

A sheet says "hair #c9642b", but the anchor is what every shot must match, so the baseline is
the colour the anchor's subject actually shows near the sheet's (a painted fill, a lit photo),
with how much of the character it covers and where. A shot keeps the trait when that colour
still covers a comparable amount of its character in the same place.

"The same place" is measured from the face, the skin colour's blob: the anchor (a plain
background, a clean subject) shows where each colour sits around its face (the hair above and
beside it, the eyes inside it, the top below it) on a grid scaled by the face's width, and the
shot is looked at there, around its own face, whatever the pose and the framing. So a forest's
green beside the head does not vouch for green eyes, nor a pet at the feet for the hair. When
a shot shows no face of the skin colour (the skin itself drifted), the trait is looked for in
its band of the character's height instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
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
_MIN_SHARE = 0.0003  # of the character's pixels: less is a stray pixel, not a visible trait
_BAND_MARGIN = 0.12  # of the character's height, around where the anchor shows a trait
_MIN_FACE = 40  # pixels of skin, fewer is a hand or an ear, not a face to measure from
_FACE_SHARE = 0.25  # of the largest skin blob: a smaller blob is a hand, not a face
_FACES = 4  # skin blobs tried as the face, largest first (a busy desert has many sandy ones)
_CELL = 0.125  # of the face's width: the grid a trait's place on the anchor is kept on
_REACH = 2  # cells around the anchor's that still count as the same place (a turned head)
_ROW = 1 << 16  # a cell's key is its row times this plus its column: far more than any row
_BACKDROP = 2.5
"""CIEDE2000 within which a subject's pixel is the backdrop seen through a gap (between the
arms, between the legs): a white shirt on an off-white backdrop is further (3.3)."""
_SHADE = (0.45, 0.97)  # of the backdrop's red, green and blue: the darkness of a cast shadow
_SHADE_TINT = 1.08  # the most one channel's shade may be over another's: a shadow is grey
_FEET = 0.85  # of the subject's height, from its top: below it, a backdrop's shade is a shadow


@dataclass(frozen=True)
class Face:
    """The face's box on a picture, the yardstick a trait's place is measured by: the face
    moves and scales with the pose and the framing, and no background is ever inside it."""

    top: float
    centre: float
    width: float
    height: float

    def cells(self, rows: NDArray[np.float64], cols: NDArray[np.float64]) -> NDArray[np.int64]:
        """Each pixel's cell of a grid laid from the face (one key per cell)."""
        size = self.width * _CELL
        down = np.floor((rows - self.top) / size).astype(np.int64)
        across = np.floor((cols - self.centre) / size).astype(np.int64)
        return np.asarray(down * _ROW + across, dtype=np.int64)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def aspect(self) -> float:
        return self.width / self.height


@dataclass(frozen=True)
class Baseline:
    """A trait as the anchor shows it: colour, share of the character, vertical band."""

    lab: Floats
    share: float
    band: tuple[float, float]
    cells: frozenset[int] = frozenset()
    """Where on the anchor, in cells of the grid laid from its face (empty: no face seen)."""
    face_share: float = 0.0
    """How many pixels, over the face's area."""

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


_LINE = 4  # side of the square a fill holds and a line drawn round a shape does not


class Picture:
    """An image's subject with its colours indexed once, for the many traits asked of it."""

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        rows, cols = np.nonzero(subject.mask)
        self.pixels: NDArray[np.uint8] = subject.rgb[subject.mask]
        self.table = ColourTable.of(self.pixels)
        self.rows = rows.astype(np.float64)
        self.cols = cols.astype(np.float64)
        self.top, self.height = self.whole = _extent(self.rows)

    @classmethod
    def of(cls, path: Path) -> Picture:
        return cls(find_subject(load_rgb(path)))

    @cached_property
    def backdrop(self) -> NDArray[np.bool_]:
        """Which of the subject's pixels are its backdrop, not the character: the backdrop's
        own colour seen through a gap the outline encloses, and its shade below the feet (the
        shadow the character casts on it). A colour there is the place, never a trait: in a
        set the place is the set's, and the anchor's plain backdrop is nowhere to be seen."""
        rgb = self.subject.rgb
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        if not len(self.pixels) or not len(border):
            return np.zeros(len(self.pixels), dtype=bool)
        backdrop = dominant_colours(border, count=1, merge=MATCH_RADIUS, min_share=0.0)[0][0]
        table = self.table
        gain = table.rgb.astype(np.float64) / np.maximum(np.asarray(backdrop, np.float64), 1.0)
        shade = (
            (gain.min(axis=1) >= _SHADE[0])
            & (gain.max(axis=1) <= _SHADE[1])
            & (gain.max(axis=1) <= _SHADE_TINT * gain.min(axis=1))
        )
        top, height = self.whole
        low = self.rows >= top + _FEET * height
        own = delta_e(table.lab, np.broadcast_to(to_lab(backdrop), table.lab.shape)) <= _BACKDROP
        return np.asarray(own[table.inverse] | (shade[table.inverse] & low), dtype=bool)

    def near(self, lab: Floats, radius: float) -> NDArray[np.bool_]:
        if not len(self.pixels):
            return np.zeros(0, dtype=bool)
        return self.table.near(lab, radius)

    def rescale(self, known: list[Floats]) -> None:
        """Measure heights on the pixels of the character's known colours only, so a pet or a
        building the subject mask took in does not change what "the top" of it is; on the
        whole subject when it shows (almost) none of them."""
        hits = np.zeros(len(self.pixels), dtype=bool)
        for lab in known:
            hits |= self.near(lab, MATCH_RADIUS)
        filled = self._filled(hits)
        if filled.sum() >= 10:
            hits = filled
        self.top, self.height = _extent(self.rows[hits]) if hits.sum() >= 10 else self.whole

    def _filled(self, hits: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Of ``hits``, those in fills, not in thin lines: the set's furniture drawn round
        in the outline's colour (a desk behind a dark dog) is no part of the figure's height."""
        from scipy.ndimage import binary_opening

        grid = np.zeros(self.subject.mask.shape, dtype=bool)
        grid[self.subject.mask] = hits
        opened = binary_opening(grid, np.ones((_LINE, _LINE), dtype=bool))
        return np.asarray(opened[self.subject.mask], dtype=bool)

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
        close = self.near(sheet, SHEET_RADIUS) & ~self.backdrop
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

    def faces(
        self,
        skin: Floats,
        *,
        others: tuple[Floats, ...] = (),
    ) -> list[Face]:
        """Where a face may be: the blobs of the ``skin`` colour on the subject big enough to
        be one (a hand or a neck is smaller), largest first; empty when there is none, as when
        the skin itself drifted. Pixels of ``others`` never count as skin."""
        from skimage.measure import label

        skinned = self.near(skin, MATCH_RADIUS)
        for colour in others:
            skinned &= ~self.near(colour, MATCH_RADIUS)
        grid = np.zeros(self.subject.mask.shape, dtype=bool)
        grid[self.subject.mask] = skinned
        pieces = np.asarray(label(grid, connectivity=1), dtype=np.int64)  # type: ignore[no-untyped-call]
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        order = np.argsort(-sizes, kind="stable")[:_FACES]
        found: list[Face] = []
        for piece in order[sizes[order] >= max(_MIN_FACE, sizes.max() * _FACE_SHARE)]:
            rows, cols = np.nonzero(pieces == piece)
            found.append(
                Face(
                    top=float(rows.min()),
                    centre=float(cols.min() + cols.max() + 1) / 2,
                    width=float(cols.max() - cols.min() + 1),
                    height=float(rows.max() - rows.min() + 1),
                )
            )
        return found

    def place(self, base: Baseline, face: Face) -> Baseline:
        """``base`` (read off this, the anchor) with where it lies around ``face``: the cells
        its colour covers, and those next to them, as a pose or a turned head moves it."""
        hits = self.near(base.lab, MATCH_RADIUS)
        keys = np.unique(face.cells(self.rows[hits], self.cols[hits]))
        steps = range(-_REACH, _REACH + 1)
        cells = {
            int(key) + down * _ROW + across for key in keys for down in steps for across in steps
        }
        return replace(base, cells=frozenset(cells), face_share=float(hits.sum()) / face.area)

    def kept(self, base: Baseline, *, face: Face | None = None) -> float:
        """How much of ``base`` this picture shows where the anchor shows it, over the
        anchor's amount (1.0: as much)."""
        return self._matches(base, face)[1]

    def find(
        self,
        base: Baseline,
        known: list[Floats],
        *,
        face: Face | None = None,
        rivals: tuple[Floats, ...] = (),
    ) -> Found:
        """Look for ``base`` where the anchor shows it (see :meth:`_where`). When it is
        missing, report that place's main colour that is none of the anchor's (``known``):
        what the trait became. A pixel nearer one of ``rivals`` (other colours the anchor
        shows) than ``base`` is that colour, not the trait: under a night's light the eyes and
        the outline round them draw close."""
        hits, kept, where = self._matches(base, face, rivals)
        lab = median_lab(self.table.lab[self.table.inverse[hits]]) if hits.any() else None
        other = where.copy()
        for colour in known:
            other &= ~self.near(colour, MATCH_RADIUS)
        colours = dominant_colours(self.pixels[other], count=1, merge=MATCH_RADIUS)
        return Found(kept=kept, lab=lab, new=to_lab(colours[0][0]) if colours else None)

    def _matches(
        self, base: Baseline, face: Face | None, rivals: tuple[Floats, ...] = ()
    ) -> tuple[NDArray[np.bool_], float, NDArray[np.bool_]]:
        """The pixels of ``base``'s colour where the anchor shows it, their amount over the
        anchor's, and that place."""
        where, scale, expected = self._where(base, face)
        hits = self.near(base.lab, MATCH_RADIUS) & where
        if rivals and len(self.pixels):
            table = self.table.lab
            own = delta_e(table, np.broadcast_to(base.lab, table.shape))
            for rival in rivals:
                hits &= (own <= delta_e(table, np.broadcast_to(rival, table.shape)))[
                    self.table.inverse
                ]
        kept = float(hits.sum()) / scale / expected if expected else 0.0
        return hits, kept, where

    def _where(self, base: Baseline, face: Face | None) -> tuple[NDArray[np.bool_], float, float]:
        """Which pixels lie where the anchor shows ``base``, what their count is measured over
        and the anchor's own measure: around the ``face`` (its area) when both pictures have
        one, else in the trait's band of the character's height (its square), the fallback
        for a shot whose skin drifted or a sheet that names none."""
        if face is not None and base.cells:
            where = np.isin(face.cells(self.rows, self.cols), list(base.cells))
            return where, face.area, base.face_share
        return self.in_band(base.band), self.height * self.height, base.share


def distance(first: Floats, second: Floats) -> float:
    return float(delta_e(first, second))


def _extent(rows: NDArray[np.float64]) -> tuple[float, float]:
    """Top and height of a set of rows, ignoring the outermost 0.5% (stray pixels)."""
    if not len(rows):
        return 0.0, 1.0
    top = float(np.percentile(rows, 0.5))
    bottom = float(np.percentile(rows, 99.5))
    return top, max(1.0, bottom - top)
