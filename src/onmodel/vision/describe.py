"""A model sheet proposed from the anchor's own colours (``character describe``, offline).

A character drawn or imported without a sheet has nothing for the palette check to hold it to;
reading the colours off the anchor gives it one the user can correct. The layout is what a
character sheet's figure shows: hair at the top of the subject, the face's skin below it with
the eyes as the small coloured spots inside the face, the outfit over the body.

Only the inside of fills is read, never the lines drawn round them: an outline is a fill's
colour darkened, and over a dark pair of jeans it would pass for a second outfit colour. A
colour that is the sheet's own hex code but for a little noise keeps it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from onmodel.providers.preview import parse_colour
from onmodel.sheet import ModelSheet
from onmodel.vision.colours import RGB, chroma, delta_e, dominant_colours, hex_of, to_lab
from onmodel.vision.subject import inside_fills
from onmodel.vision.traits import MATCH_RADIUS, Picture

_DISTINCT = 15.0  # CIEDE2000 between the eyes' colour and the other traits' to be told apart
_NOISE = 3.0  # CIEDE2000 within which a proposed colour is the sheet's own, kept as written
_HAIR = (0.0, 0.12)  # bands of the subject's height, top to bottom
_FACE = (0.12, 0.45)
_BODY = (0.45, 0.85)
_OUTFIT_SHARE = 0.08  # of the body band: less is a button or a shoe, not an outfit colour


def propose(picture: Picture, current: ModelSheet) -> ModelSheet:
    """``current`` with hair, eye, skin and outfit colours read off ``picture`` in hex; a colour
    that cannot be told (no subject, a bald head) keeps what ``current`` says."""
    hair = _main(picture, _HAIR, [])
    skin = _main(picture, _FACE, [c for c in (hair,) if c is not None])
    taken = [c for c in (hair, skin) if c is not None]
    outfit = [
        colour
        for colour, share in _colours(picture, _BODY, taken, count=3, apart=MATCH_RADIUS)
        if share >= _OUTFIT_SHARE
    ][:2]
    eyes = _eyes(picture, taken + outfit)
    data = current.model_dump()
    for field, colour in (("hair_color", hair), ("skin_color", skin), ("eye_color", eyes)):
        if colour is not None:
            data[field] = _worded(colour, [data[field]])
    if outfit:
        data["outfit_colors"] = [_worded(c, current.outfit_colors) for c in outfit]
    return ModelSheet.model_validate(data)


def _worded(colour: RGB, current: list[str]) -> str:
    """``colour`` in hex, or the sheet's own hex code for it when one of ``current`` is the
    same colour but for noise: a proposal must not turn "#ffffff" into "#fefefe". A colour's
    name ("red") is still proposed as the anchor's exact hex code."""
    lab = to_lab(colour)
    for text in current:
        rgb = parse_colour(text) if text.startswith("#") else None
        if rgb is not None and float(delta_e(to_lab(rgb), lab)) <= _NOISE:
            return text
    return hex_of(colour)


def _colours(
    picture: Picture,
    band: tuple[float, float],
    taken: list[RGB],
    *,
    count: int,
    apart: float = _DISTINCT,
) -> list[tuple[RGB, float]]:
    """The main colours inside the fills of a band of the subject, apart from colours within
    ``apart`` CIEDE2000 of one already given a trait (a cream top beside a pale skin is
    closer than eyes may be) and from near black (pupils, shadows)."""
    pixels = picture.pixels[_apart(picture, picture.in_band(band), taken, apart)]
    return dominant_colours(pixels, count=count, merge=MATCH_RADIUS, min_share=0.0)


def _main(picture: Picture, band: tuple[float, float], taken: list[RGB]) -> RGB | None:
    found = _colours(picture, band, taken, count=1)
    return found[0][0] if found else None


def _eyes(picture: Picture, taken: list[RGB]) -> RGB | None:
    """The eyes: in the face band, the most common colour that is no other trait's (hair,
    skin, a collar of the outfit), nor an outline, nor the white of the eye; a colourful
    candidate wins over a grey one."""
    candidates = _colours(picture, _FACE, taken, count=4)
    coloured = [(c, share) for c, share in candidates if _chroma(c) > 12 and _lightness(c) < 92]
    best = coloured or candidates
    return best[0][0] if best else None


def _apart(
    picture: Picture, where: NDArray[np.bool_], taken: list[RGB], radius: float
) -> NDArray[np.bool_]:
    fills = inside_fills(picture.subject.rgb)[picture.subject.mask]
    keep = where & fills & (picture.table.lab[picture.table.inverse][:, 0] > 22)
    for colour in taken:
        keep &= ~picture.near(to_lab(colour), radius)
    return np.asarray(keep, dtype=bool)


def _chroma(colour: RGB) -> float:
    return chroma(to_lab(colour))


def _lightness(colour: RGB) -> float:
    return float(to_lab(colour)[0])
