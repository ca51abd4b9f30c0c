"""Is this image a good anchor? Warnings for what makes every later shot drift.

The anchor is what every shot is checked against and what an image model is shown: a busy
background leaks into the character's colours, a character cut off by the frame has no feet
or hair to keep, and a small one has too few pixels to measure. Each finding is one line a
person can act on; an empty list means a clean anchor.

A plain background is one smooth area (see :mod:`onmodel.vision.subject`), not one colour: a
studio backdrop shading from light to dark is plain, a street of windows and signs is not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from onmodel.vision.subject import Subject, find_subject, load_rgb, smooth_areas

PLAIN_SHARE = 0.7
"""The share of the background one smooth area must cover for the background to be plain."""
SMALL_SHARE = 0.12
"""The share of the frame under which the subject's box counts as small."""


def anchor_hygiene(path: Path) -> list[str]:
    """One line per problem of the anchor at ``path`` (empty: none); raises
    :class:`~onmodel.errors.InvalidImageError` for a file that is not a readable image."""
    subject = find_subject(load_rgb(path))
    if not subject.mask.any():
        return ["no subject found: the image looks like one plain area"]
    warnings: list[str] = []
    plain = _plain_share(subject)
    if plain < PLAIN_SHARE:
        warnings.append(
            f"the background is not plain (its largest smooth area covers {_percent(plain)} "
            "of it): "
            "a busy background leaks into the character's colours"
        )
    edges = subject.edges_touched()
    if edges:
        warnings.append(
            f"the subject touches the frame's {_listed(edges)} "
            f"edge{'s' if len(edges) > 1 else ''}: leave a margin so nothing is cut off"
        )
    if subject.share < SMALL_SHARE:
        warnings.append(
            f"the subject is small in the frame ({_percent(subject.share)} of it): "
            "frame the character larger so its traits can be seen and measured"
        )
    return warnings


def _plain_share(subject: Subject) -> float:
    """How much of the background its largest smooth area covers."""
    areas, count = smooth_areas(subject.rgb)
    behind = areas[~subject.mask]
    if not len(behind):
        return 1.0
    return float(np.bincount(behind, minlength=count).max()) / len(behind)


def _percent(share: float) -> str:
    """A share as a person reads it: "under 1%" rather than a small subject's "0%"."""
    return "under 1%" if share < 0.01 else f"{share:.0%}"


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
