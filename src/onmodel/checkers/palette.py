"""The ``palette`` check: every colour of the model sheet, measured on the character.

Offline and free, so every shot can have it. For each sheet colour (hair, eyes, skin, each
outfit and palette colour, a must-keep item that names one: "red hair clip") the anchor's own
rendering of it is the baseline, and the shot keeps the trait when that colour still covers a
comparable share of the character, in the same band from head to feet. Only the subject is
looked at, never its background: a blue sky does not vouch for blue hair.

What the shot's request changes on purpose is not drift: a requested outfit makes the outfit
colours "changed by request", and under a scene's own light (night, sunset, neon) a colour
that is only lighter or darker than the anchor's is "changed by request" too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from onmodel.checkers.base import (
    Checker,
    CheckerContext,
    CheckerError,
    CheckOutcome,
    CheckSubject,
    TraitResult,
    Verdict,
)
from onmodel.errors import InvalidImageError
from onmodel.providers.preview import colours_in, parse_colour
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.vision.colours import RGB, chroma, dominant_colours, hex_of, to_rgb
from onmodel.vision.describe import propose
from onmodel.vision.traits import MATCH_RADIUS, Baseline, Found, Picture, distance

KEPT = 0.3
"""The share of the anchor's amount of a colour a shot must show to keep the trait: a prop, an
arm or a turned head hides some of it, a recoloured trait leaves almost none."""
DRIFT_PENALTY = 35
"""Points a drifted trait costs: one drift alone takes a shot well under the default pass
mark of 80."""
_LIGHTING = re.compile(
    r"night|midnight|\bdark|dusk|sunset|sunrise|dawn|evening|twilight|golden hour|neon|"
    r"candle|moonlit|firelight|torch|lantern|disco|club|\bstage\b|concert",
)
_LIGHT_RADIUS = 8.0  # CIEDE2000, lightness weighed a quarter: the light changes little else
_LIGHTNESS_WEIGHT = 4.0
_LIT_CHROMA = 10.0
"""A grey, black or white is told from an outline or a shadow by lightness alone, so only a
colour at least this colourful (Lab chroma) is forgiven a change of light."""
_ANCHOR_COLOURS = 5  # traits read off an anchor whose sheet names no colour at all


@dataclass(frozen=True)
class _Trait:
    """One sheet colour to check: the trait's name in results, what the sheet says, its RGB."""

    name: str
    text: str
    rgb: RGB
    outfit: bool = False


class PaletteChecker(Checker):
    """Measures each sheet colour on the shot's subject against the anchor's (CIEDE2000)."""

    name = "palette"
    version = "1"
    billed = False
    offline = True

    def __init__(self, context: CheckerContext | None = None) -> None:
        super().__init__(context)
        self._anchors: dict[str, Picture] = {}

    def check(self, subject: CheckSubject) -> CheckOutcome:
        anchor = self._anchor(subject.anchor)
        try:
            shot = Picture.of(subject.image)
        except InvalidImageError as exc:
            raise CheckerError(str(exc), kind="unreadable") from None
        traits = _traits(subject.sheet, anchor)
        bases: dict[str, Baseline | None] = {}
        for trait in traits:
            taken = [b.lab for b in bases.values() if b is not None]
            bases[trait.name] = anchor.baseline(trait.rgb, taken)
        known = [b.lab for b in bases.values() if b is not None]
        shot.rescale(known)
        lighting = _lighting(subject.request)
        results: list[TraitResult] = []
        for trait in traits:
            base = bases[trait.name]
            if base is None:
                results.append(
                    TraitResult(
                        trait.name,
                        Verdict.NOT_VISIBLE,
                        note="the anchor does not show this colour",
                        expected=hex_of(trait.rgb),
                    )
                )
                continue
            found = shot.find(base, known, radius=MATCH_RADIUS)
            results.append(_judge(trait, base, found, subject.request, shot, lighting))
        return _outcome(results)

    def describe(
        self, anchor: Path, mime: str, *, current: ModelSheet, character_name: str = ""
    ) -> ModelSheet:
        """A sheet whose colours are the anchor's own, read off its subject (see
        :func:`onmodel.vision.describe.propose`); the words of ``current`` are kept."""
        try:
            return propose(self._anchor(anchor), current)
        except CheckerError as exc:
            raise InvalidImageError(str(exc)) from None

    def _anchor(self, path: Path) -> Picture:
        """The anchor's subject, measured once per file content for this checker's life: a
        session's shots all share one anchor."""
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest not in self._anchors:
                self._anchors[digest] = Picture.of(path)
        except (OSError, InvalidImageError) as exc:
            raise CheckerError(f"the anchor cannot be read: {exc}", kind="unreadable") from None
        picture = self._anchors[digest]
        if not len(picture.pixels):
            raise CheckerError("no subject found on the anchor", kind="unreadable")
        return picture


def _traits(sheet: ModelSheet, anchor: Picture) -> list[_Trait]:
    """Every colour the sheet names, in sheet order; an anchor's own main colours when the
    sheet names none, so a sheet-less character is still checked against its anchor."""
    named: list[tuple[str, str, bool]] = [
        ("hair_color", sheet.hair_color, False),
        ("eye_color", sheet.eye_color, False),
        ("skin_color", sheet.skin_color, False),
    ]
    named += [(f"outfit_colors: {c}", c, True) for c in sheet.outfit_colors]
    named += [(f"palette: {c}", c, False) for c in sheet.palette]
    traits: list[_Trait] = []
    for name, text, outfit in named:
        rgb = parse_colour(text) if text else None
        if rgb is not None:
            traits.append(_Trait(name, text, rgb, outfit))
    for item in sheet.must_keep:
        colours = colours_in(item)
        if colours:
            traits.append(_Trait(f"must_keep: {item}", item, colours[0]))
    if traits:
        return traits
    main = dominant_colours(anchor.pixels, count=_ANCHOR_COLOURS, min_share=0.04)
    return [_Trait(f"anchor colour: {hex_of(c)}", hex_of(c), c) for c, _ in main]


def _lighting(request: ShotRequest) -> str:
    """The words of the request that change the light on the character ('' when none)."""
    found = _LIGHTING.search(" ".join((request.scene, request.text, request.action)).lower())
    return found.group(0) if found else ""


def _judge(
    trait: _Trait,
    base: Baseline,
    found: Found,
    request: ShotRequest,
    shot: Picture,
    lighting: str,
) -> TraitResult:
    expected = hex_of(base.rgb)
    if trait.outfit and request.outfit.strip():
        return TraitResult(
            trait.name,
            Verdict.CHANGED,
            note=f"the shot asks for {request.outfit.strip()!r}",
            expected=expected,
        )
    if found.kept >= KEPT and found.lab is not None:
        return TraitResult(
            trait.name,
            Verdict.SAME,
            expected=expected,
            measured=hex_of(to_rgb(found.lab)),
            delta_e=round(distance(base.lab, found.lab), 1),
        )
    if lighting and chroma(base.lab) >= _LIT_CHROMA:
        lit = shot.find(base, [], radius=_LIGHT_RADIUS, lightness=_LIGHTNESS_WEIGHT)
        if lit.kept >= KEPT and lit.lab is not None:
            return TraitResult(
                trait.name,
                Verdict.CHANGED,
                note=f"lighter or darker as the scene's light ({lighting}) makes it",
                expected=expected,
                measured=hex_of(to_rgb(lit.lab)),
                delta_e=round(distance(base.lab, lit.lab), 1),
            )
    if found.new is None:
        return TraitResult(
            trait.name,
            Verdict.DRIFTED,
            note=f"not found on the character ({found.kept:.0%} of the anchor's amount)",
            expected=expected,
        )
    return TraitResult(
        trait.name,
        Verdict.DRIFTED,
        note=f"only {found.kept:.0%} of the anchor's amount; the same place shows another colour",
        expected=expected,
        measured=hex_of(to_rgb(found.new)),
        delta_e=round(distance(base.lab, found.new), 1),
    )


def _outcome(results: list[TraitResult]) -> CheckOutcome:
    """100 when every visible trait is the anchor's colour; each drift costs
    :data:`DRIFT_PENALTY`, and a kept colour that shifted a little a few points at most."""
    drifted = [r for r in results if r.verdict == Verdict.DRIFTED]
    kept = [r.delta_e or 0.0 for r in results if r.verdict == Verdict.SAME]
    shift = sum(min(r, 10.0) for r in kept) / len(kept) / 2 if kept else 0.0
    score = max(0, round(100 - DRIFT_PENALTY * len(drifted) - shift))
    if drifted:
        summary = "drifted: " + ", ".join(r.trait for r in drifted)
    elif kept:
        summary = f"on model: {len(kept)} colour{'s' if len(kept) != 1 else ''} as the anchor's"
    else:
        summary = "nothing to compare: the anchor shows none of the sheet's colours"
    return CheckOutcome(score=score, traits=results, summary=summary)
