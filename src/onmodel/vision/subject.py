"""Where the character is in an image: a mask of the subject, apart from its background.

Colours are only compared on the subject: a blue sky must not vouch for blue hair, nor sky-blue
hair be lost in the sky. The image is cut into areas of smooth colour: neighbouring pixels
whose colours differ by under :data:`STEP` CIEDE2000 are one area, so a gradient sky or a lit
floor stays one area however far its ends differ, while a line drawn round a shape, the
character's outline, is a wall no area crosses, even between two fills of the same colour.
The areas that run along the frame's border are background, as are specks the background
surrounds (a star, a flower, a raindrop); what remains, as its largest connected piece, is
the subject (pieces a thin line apart are one piece: a dark outline the night's ground took
must not cut the legs off). An area that meets only the top or only the bottom edge near the
middle is kept as subject: that is a head or a body cut off by the frame, which the anchor
hygiene warns about.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from onmodel.errors import InvalidImageError
from onmodel.vision.colours import ColourTable, delta_e

WORKING_SIDE = 320
"""Images are measured at most this big: the fills and the eyes stay many pixels wide, and a
check takes a fraction of a second instead of seconds."""
SEGMENT_SIDE = 768
"""Images are cut into areas at most this big, before they are shrunk to
:data:`WORKING_SIDE`: shrinking drops rows and columns, and with them pieces of a thin outline,
through which the sky would flood into sky-blue hair."""
STEP = 3.0
"""CIEDE2000 between neighbouring pixels under which they are one smooth area: a gradient
steps by about one, JPEG noise by a few, an outline by tens."""
_LINE_SIDE = 128  # of the image's side: a background area thinner than that is a line
_GAP = 3  # side of the square each piece is grown by: pieces two pixels apart join
_SPECK = 0.0003  # of the frame: an area this small with only background around it is one


@dataclass(frozen=True)
class Subject:
    """The subject's mask over ``rgb`` and its bounding box (top, left, bottom, right;
    bottom and right exclusive)."""

    rgb: NDArray[np.uint8]
    mask: NDArray[np.bool_]
    box: tuple[int, int, int, int]

    @property
    def share(self) -> float:
        """How much of the frame the subject's box fills (1.0: all of it)."""
        top, left, bottom, right = self.box
        height, width = self.mask.shape
        return (bottom - top) * (right - left) / float(height * width)

    def edges_touched(self, margin: int = 1) -> list[str]:
        """The frame edges the subject reaches, in reading order."""
        height, width = self.mask.shape
        sides = {
            "top": self.mask[:margin, :],
            "left": self.mask[:, :margin],
            "right": self.mask[:, width - margin :],
            "bottom": self.mask[height - margin :, :],
        }
        return [name for name, strip in sides.items() if strip.any()]


def load_rgb(path: Path, max_side: int = SEGMENT_SIDE) -> NDArray[np.uint8]:
    """The image as 8-bit RGB, shrunk to ``max_side`` without blending colours (nearest
    neighbour), so a drawing's flat fills keep their exact values."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"{path} is not a readable image ({exc})") from None
    scale = max_side / max(rgb.size)
    if scale < 1:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.NEAREST)
    return np.asarray(rgb, dtype=np.uint8)


def find_subject(rgb: NDArray[np.uint8]) -> Subject:
    """The subject of ``rgb``: the largest connected piece that is not background, on
    ``rgb`` shrunk to :data:`WORKING_SIDE` (the areas are found before it is shrunk)."""
    rgb, pieces, lines = _pieces(rgb)
    if not pieces.any():
        empty = np.zeros(rgb.shape[:2], dtype=bool)
        return Subject(rgb=rgb, mask=empty, box=(0, 0, 0, 0))
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    return _subject(rgb, _outlined(pieces == int(sizes.argmax()), lines))


def find_figures(rgb: NDArray[np.uint8], count: int) -> list[Subject]:
    """The figures of a picture of several, left to right: every piece that is not
    background and at least :data:`FIGURE_SHARE` of the largest (a lamp or a flower of the
    set may be one too: which figure is whom is for the caller to decide). Figures drawn
    touching are one piece; while there are fewer than ``count``, the widest piece is cut at
    its narrowest column, where two figures side by side meet, if it narrows there.

    Each figure is a fraction of the frame, so the picture is measured larger than one
    figure's (up to :data:`SEGMENT_SIDE`): each keeps about the pixels a lone figure has, and
    its eyes stay more than a few pixels wide."""
    rgb, pieces, lines = _pieces(rgb, min(SEGMENT_SIDE, WORKING_SIDE * max(1, count)))
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    if not sizes.any():
        return []
    masks = [
        np.asarray(pieces == piece, dtype=bool)
        for piece in np.flatnonzero(sizes >= sizes.max() * FIGURE_SHARE)
    ]
    while len(masks) < count:
        widest = max(range(len(masks)), key=lambda index: _width(masks[index]))
        halves = _cut(masks[widest])
        if halves is None:
            break
        masks[widest : widest + 1] = halves
    subjects = [_subject(rgb, _outlined(mask, lines)) for mask in masks]
    return sorted(subjects, key=lambda subject: subject.box[1] + subject.box[3])


FIGURE_SHARE = 0.08
"""Of the largest piece: a smaller one is a prop or a speck of the set, not a figure (a
small dog beside a girl is still a fifth of her)."""
_NARROWS = 0.5  # a cut column has at most this share of the piece's median column's pixels
_CUT_SPAN = (0.2, 0.8)  # of the piece's width: where a cut between two figures may fall
_FEET = 0.3  # of the piece's height, from its bottom: where figures side by side stand apart
_GAPS = 4  # gaps between standing figures tried as cuts, widest first


def _pieces(
    rgb: NDArray[np.uint8], side: int = WORKING_SIDE
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.bool_]]:
    """``rgb`` shrunk to ``side``, its pieces that are not background, numbered from 1
    (0: background), and the background's thin lines (see :func:`_outlined`)."""
    from scipy.ndimage import binary_dilation
    from skimage.measure import label

    areas, count = smooth_areas(rgb)
    background = _border_regions(areas, count)
    _absorb_specks(areas, count, background)
    rows, cols = _shrunk(rgb.shape[0], rgb.shape[1], side)
    rgb = rgb[np.ix_(rows, cols)]
    candidate = ~background[areas[np.ix_(rows, cols)]]
    lines = _lines(background[areas])[np.ix_(rows, cols)]
    joined = binary_dilation(candidate, np.ones((_GAP, _GAP), dtype=bool))
    pieces = np.asarray(label(joined, connectivity=1), dtype=np.int64) * candidate  # type: ignore[no-untyped-call]
    return rgb, pieces, lines


def _lines(background: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Which background pixels are in thin lines, not broad areas (see :func:`_outlined`)."""
    from scipy.ndimage import binary_opening

    side = max(3, round(max(background.shape) / _LINE_SIDE))
    return np.asarray(
        background & ~binary_opening(background, np.ones((side, side), dtype=bool)), dtype=bool
    )


def _outlined(mask: NDArray[np.bool_], lines: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """A piece with the background's thin lines that run along it: the figure's own outline,
    which the set's furniture it touches (a bookshelf behind a dog's nose) joins to the
    frame's border, is the figure's, as it is on its anchor's plain backdrop."""
    from scipy.ndimage import binary_dilation

    side = max(_GAP, round(max(mask.shape) / _LINE_SIDE) + 1)  # a line's width, and one
    along = binary_dilation(mask, np.ones((side, side), dtype=bool))
    return np.asarray(mask | (lines & along), dtype=bool)


def _subject(rgb: NDArray[np.uint8], mask: NDArray[np.bool_]) -> Subject:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    return Subject(rgb=rgb, mask=mask, box=box)


def split_figure(subject: Subject) -> list[list[Subject]]:
    """The ways a piece may be cut in two where figures meet (see :func:`_cuts`), each left
    then right, however little it narrows there: for a caller that keeps a cut only when it
    finds the members better for it; empty when the piece is too narrow to cut.

    Each half is looked at again as a picture of its own, its box: what joined two figures
    (a shelf, a window of the set behind them) is cut by that box's edges, and so is
    background there, as it would be in a picture of one of them."""
    found = []
    for at in _cuts(subject.mask, strict=False):
        halves = []
        for half in _halves(subject.mask, at):
            top, left, bottom, right = _subject(subject.rgb, half).box
            alone = find_subject(np.ascontiguousarray(subject.rgb[top:bottom, left:right]))
            halves.append(alone if alone.mask.any() else _subject(subject.rgb, half))
        found.append(halves)
    return found


def _width(mask: NDArray[np.bool_]) -> int:
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[-1] - cols[0] + 1) if len(cols) else 0


def _halves(mask: NDArray[np.bool_], at: int) -> list[NDArray[np.bool_]]:
    left, right = mask.copy(), mask.copy()
    left[:, at:] = False
    right[:, :at] = False
    return [left, right]


def _cut(mask: NDArray[np.bool_]) -> list[NDArray[np.bool_]] | None:
    """``mask`` cut in two at the first of :func:`_cuts` (None: no cut)."""
    cuts = _cuts(mask, strict=True)
    return _halves(mask, cuts[0]) if cuts else None


def _cuts(mask: NDArray[np.bool_], *, strict: bool) -> list[int]:
    """The columns where ``mask`` may be cut between two figures side by side, best first:
    in the middle of its width, the middle of each gap between them where they stand (the
    lowest :data:`_FEET` of it: a shelf or a window of the set may join them higher up),
    widest first; else its narrowest column, unless (``strict``) it is not much narrower
    than most."""
    columns = mask.sum(axis=0)
    filled = np.flatnonzero(columns)
    if len(filled) < 4:
        return []
    first, last = int(filled[0]), int(filled[-1])
    low = first + int((last - first) * _CUT_SPAN[0])
    high = first + int((last - first) * _CUT_SPAN[1])
    if high <= low:
        return []
    rows = np.flatnonzero(mask.any(axis=1))
    feet = mask[int(rows[-1] - (rows[-1] - rows[0]) * _FEET) :, low:high].any(axis=0)
    if not feet.all():
        gaps = np.flatnonzero(~feet)
        runs = np.split(gaps, np.flatnonzero(np.diff(gaps) > 1) + 1)
        runs.sort(key=len, reverse=True)
        return [low + int(run[len(run) // 2]) for run in runs[:_GAPS]]
    at = low + int(np.argmin(columns[low:high]))
    if strict and columns[at] > _NARROWS * float(np.median(columns[filled])):
        return []
    return [at]


def _shrunk(
    height: int, width: int, side: int = WORKING_SIDE
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The rows and columns an image keeps when shrunk to ``side`` without blending colours
    (nearest neighbour), so a drawing's flat fills keep their exact values."""
    scale = min(1.0, side / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return tuple(  # type: ignore[return-value]
        np.minimum(((np.arange(n) + 0.5) / scale).astype(np.int64), full - 1)
        for n, full in zip(size, (height, width), strict=True)
    )


def smooth_areas(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.int64], int]:
    """Each pixel's smooth area (see the module's docstring) and how many areas there are."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    height, width = rgb.shape[:2]
    across, down = _alike_neighbours(rgb)
    index = np.arange(height * width, dtype=np.int64).reshape(height, width)
    first = np.concatenate([index[:, :-1][across], index[:-1, :][down]])
    second = np.concatenate([index[:, 1:][across], index[1:, :][down]])
    size = height * width
    graph = coo_matrix((np.ones(len(first), dtype=np.int8), (first, second)), shape=(size, size))
    count, labels = connected_components(graph, directed=False)
    return np.asarray(labels, dtype=np.int64).reshape(height, width), int(count)


def inside_fills(rgb: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """Which pixels are alike (under :data:`STEP`) to all four neighbours: the inside of a
    fill, not the thin lines drawn round it nor the edge between two fills."""
    across, down = _alike_neighbours(rgb)
    inside = np.ones(rgb.shape[:2], dtype=bool)
    inside[:, 1:] &= across
    inside[:, :-1] &= across
    inside[1:, :] &= down
    inside[:-1, :] &= down
    return inside


def _alike_neighbours(rgb: NDArray[np.uint8]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Whether each pixel is alike (under :data:`STEP`) to the one right of it, and to the one
    below it. CIEDE2000 is asked once per distinct pair of neighbouring colours: a drawing's
    flat fills have few, so a full-size image costs little more than a shrunk one."""
    table = ColourTable.of(rgb.reshape(-1, 3))
    colour = table.inverse.reshape(rgb.shape[:2])
    kinds = len(table.counts)
    found = []
    for near, far in ((colour[:, :-1], colour[:, 1:]), (colour[:-1, :], colour[1:, :])):
        pairs, which = np.unique(near * kinds + far, return_inverse=True)
        alike = delta_e(table.lab[pairs // kinds], table.lab[pairs % kinds]) < STEP
        found.append(np.asarray(alike[which.reshape(near.shape)], dtype=bool))
    return found[0], found[1]


def _border_regions(regions: NDArray[np.int64], count: int) -> NDArray[np.bool_]:
    """Regions on the frame's border, except one that meets a single edge, top or bottom,
    with its middle in the frame's central part: that is the subject cut off by the frame."""
    height, width = regions.shape
    edges = {
        "top": np.unique(regions[0, :]),
        "bottom": np.unique(regions[-1, :]),
        "left": np.unique(regions[:, 0]),
        "right": np.unique(regions[:, -1]),
    }
    touches = np.zeros((count, 4), dtype=bool)
    for index, ids in enumerate(edges.values()):
        touches[ids, index] = True
    background: NDArray[np.bool_] = np.asarray(touches.any(axis=1), dtype=bool)
    columns = np.bincount(
        regions.ravel(), weights=np.tile(np.arange(width), height), minlength=count
    )
    sizes = np.maximum(np.bincount(regions.ravel(), minlength=count), 1)
    centre_x = columns / sizes / width
    single = touches.sum(axis=1) == 1
    vertical = touches[:, 0] | touches[:, 1]
    central = (centre_x > 0.3) & (centre_x < 0.7)
    background[single & vertical & central] = False
    return background


def _absorb_specks(areas: NDArray[np.int64], count: int, background: NDArray[np.bool_]) -> None:
    """Mark as background every small area whose neighbours are all background: a star, a
    flower or a streak of rain drawn over the scene, which a pet or the character's outline
    would otherwise pick up as part of the subject when it lies beside them."""
    pairs = np.concatenate(
        [
            np.stack([areas[:, :-1].ravel(), areas[:, 1:].ravel()], axis=1),
            np.stack([areas[:-1, :].ravel(), areas[1:, :].ravel()], axis=1),
        ]
    )
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.concatenate([pairs, pairs[:, ::-1]])
    inner = np.bincount(pairs[:, 0], weights=~background[pairs[:, 1]], minlength=count)
    sizes = np.bincount(areas.ravel(), minlength=count)
    background[(sizes <= _SPECK * areas.size) & (inner == 0)] = True
