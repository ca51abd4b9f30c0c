"""Where the character is in an image: a mask of the subject, apart from its background.

Colours are only compared on the subject: a blue sky must not vouch for blue hair. The image is
cut into regions of like colour (Felzenszwalb's graph segmentation, from scikit-image); the
regions that run along the frame's border are background, as are regions of the same colour
that touch them; what remains, as its largest connected piece, is the subject (pieces a thin
line apart are one piece: a dark outline the night's ground took must not cut the legs off).
A region that meets only the top or only the bottom edge near the middle is kept as subject:
that is a head or a body cut off by the frame, which the anchor hygiene warns about.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from onmodel.errors import InvalidImageError
from onmodel.vision.colours import delta_e, to_lab

WORKING_SIDE = 320
"""Images are analysed at most this big: the fills and the eyes stay many pixels wide, and a
check takes a fraction of a second instead of seconds."""
_GAP = 3  # side of the square each piece is grown by: pieces two pixels apart join
_SAME_REGION = 6.0  # CIEDE2000 below which a region touching the background is background too


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


def load_rgb(path: Path, max_side: int = WORKING_SIDE) -> NDArray[np.uint8]:
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
    """The subject of ``rgb``: the largest connected piece that is not background."""
    from scipy.ndimage import binary_dilation
    from skimage.measure import label
    from skimage.segmentation import felzenszwalb

    height, width = rgb.shape[:2]
    regions = np.asarray(
        felzenszwalb(rgb, scale=max(height, width) / 2, sigma=0.3, min_size=8), dtype=np.int64
    )
    count = int(regions.max()) + 1
    background = _border_regions(regions, count)
    _grow(regions, count, background, to_lab(rgb))
    candidate = ~background[regions]
    joined = binary_dilation(candidate, np.ones((_GAP, _GAP), dtype=bool))
    pieces = np.asarray(label(joined, connectivity=1), dtype=np.int64) * candidate  # type: ignore[no-untyped-call]
    if not pieces.any():
        empty = np.zeros((height, width), dtype=bool)
        return Subject(rgb=rgb, mask=empty, box=(0, 0, 0, 0))
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    mask = np.asarray(pieces == int(sizes.argmax()), dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    return Subject(rgb=rgb, mask=mask, box=box)


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


def _grow(
    regions: NDArray[np.int64], count: int, background: NDArray[np.bool_], lab: NDArray[np.float64]
) -> None:
    """Mark as background every region that touches a background region of its colour: a
    gradient sky cut into bands, or a floor the segmentation split, stays one background."""
    means = np.zeros((count, 3))
    for channel in range(3):
        means[:, channel] = np.bincount(
            regions.ravel(), weights=lab[..., channel].ravel(), minlength=count
        )
    means /= np.maximum(np.bincount(regions.ravel(), minlength=count), 1)[:, None]
    pairs = np.concatenate(
        [
            np.stack([regions[:, :-1].ravel(), regions[:, 1:].ravel()], axis=1),
            np.stack([regions[:-1, :].ravel(), regions[1:, :].ravel()], axis=1),
        ]
    )
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    pairs = np.concatenate([pairs, pairs[:, ::-1]])
    alike = delta_e(means[pairs[:, 0]], means[pairs[:, 1]]) <= _SAME_REGION
    pairs = pairs[alike]
    changed = True
    while changed:
        spread = pairs[background[pairs[:, 0]] & ~background[pairs[:, 1]], 1]
        changed = bool(len(spread))
        background[spread] = True
