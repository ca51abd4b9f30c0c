"""A model sheet proposed from the anchor's own colours (``character describe``, offline).

A character drawn or imported without a sheet has nothing for the palette check to hold it to;
reading the colours off the anchor gives it one the user can correct. The layout is what a
character sheet's figure shows: hair at the top of the subject, the face's skin below it with
the eyes as the small coloured spots inside the face, the outfit over the body.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from onmodel.sheet import ModelSheet
from onmodel.vision.colours import RGB, chroma, dominant_colours, hex_of, to_lab
from onmodel.vision.traits import Picture

_DISTINCT = 15.0  # CIEDE2000 between two traits' colours for them to be told apart
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
        for colour, share in _colours(picture, _BODY, taken, count=3)
        if share >= _OUTFIT_SHARE
    ][:2]
    eyes = _eyes(picture, taken + outfit)
    data = current.model_dump()
    for field, colour in (("hair_color", hair), ("skin_color", skin), ("eye_color", eyes)):
        if colour is not None:
            data[field] = hex_of(colour)
    if outfit:
        data["outfit_colors"] = [hex_of(c) for c in outfit]
    return ModelSheet.model_validate(data)


def _colours(
    picture: Picture, band: tuple[float, float], taken: list[RGB], *, count: int
) -> list[tuple[RGB, float]]:
    """The main colours in a band of the subject, apart from colours already given a trait
    and from the outlines (near black) a drawing traces every shape with."""
    pixels = picture.pixels[_apart(picture, picture.in_band(band), taken)]
    return dominant_colours(pixels, count=count, min_share=0.0)


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


def _apart(picture: Picture, where: NDArray[np.bool_], taken: list[RGB]) -> NDArray[np.bool_]:
    keep = where & (picture.table.lab[picture.table.inverse][:, 0] > 22)  # outlines, pupils
    for colour in taken:
        keep &= ~picture.near(to_lab(colour), _DISTINCT)
    return np.asarray(keep, dtype=bool)


def _chroma(colour: RGB) -> float:
    return chroma(to_lab(colour))


def _lightness(colour: RGB) -> float:
    return float(to_lab(colour)[0])
