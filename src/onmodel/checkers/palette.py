"""The ``palette`` check: every colour of the model sheet, measured on the character.

Offline and free, so every shot can have it. For each sheet colour (hair, eyes, skin, each
outfit and palette colour, a must-keep item that names one: "red hair clip") the anchor's own
rendering of it is the baseline, and the shot keeps the trait when that colour still covers a
comparable amount of the character in the same place, measured from the face (see
:mod:`onmodel.vision.traits`). Only the character is looked at, never its background: a blue
sky does not vouch for blue hair, nor a forest for green eyes.

The shot's face is the blob of the anchor's skin colour around which the character's other
colours sit as they do on the anchor, so a pale cat or a planet is not taken for it. A shot
with no such blob has lost the skin colour; one whose blob is shaped unlike the anchor's face
(a skin-coloured sky joined to the jaw) is measured by the character's height instead, as is
every shot when the sheet names no skin colour.

What the shot's request changes on purpose is not drift: a requested outfit makes the outfit
colours, and palette entries of the same colours, "changed by request". So does a scene's own
light (night, sunset, neon): it darkens or tints every colour of the character alike, so the
check estimates it, as a gain on each of red, green and blue that turns most of the anchor's
colours into colours the shot shows where the anchor shows them, and a trait found only in
that light is "changed by request", the light named. A trait recoloured under that light is
none of the anchor's colours in it either, and is still caught.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

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
from onmodel.vision.colours import RGB, Floats, dominant_colours, hex_of, to_lab, to_rgb
from onmodel.vision.describe import propose
from onmodel.vision.subject import (
    FIGURE_SHARE,
    Subject,
    find_figures,
    find_subject,
    load_rgb,
    split_figure,
)
from onmodel.vision.traits import MATCH_RADIUS, Baseline, Face, Found, Picture, distance

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
Gain = tuple[float, float, float]
_GAIN_RANGE = (0.2, 1.5)
"""How much darker or brighter a scene's light may make a channel: night to a spotlight."""
_TINT = 2.5
"""The most one channel's gain may be over another's: a sunset's orange, a neon's purple; a
gain past it would turn one trait's colour into another's and excuse a recolour."""
_MILDEST = math.log(1.15)
"""A light must change some channel by this much (as a log gain): a milder one is within the
match radius of the anchor's colours anyway, and would only lend a recoloured trait some
other trait's colour a shade darker."""
_RIVALS = 12  # the anchor's main colours a lit trait must be nearer than
_LIGHT_SEEDS = 8  # the shot's main colours, each tried as the light on each anchor colour
_DARKEST = 24  # a channel this dark on the anchor says nothing of the light's gain on it
_SHAPE = math.log(1.15)  # how much wider or taller for its size a shot's face may be
_ANCHOR_COLOURS = 5  # traits read off an anchor whose sheet names no colour at all
_FOUND = 0.15
"""The least of a member's anchor colouring (see :func:`_likeness`) a figure must show to be
that member: a lamp of the set shows none of it, a member with one trait drifted most."""
_ORDER = 0.01  # the cast's order, as a tie-break between figures equally like a member
_BETTER = 0.05  # of likeness in all, that a cut must add to be kept (see check_cast)
_MARGIN = 0.02  # of the frame, round a figure's box: its outline and arms stay inside it


@dataclass(frozen=True)
class _Trait:
    """One sheet colour to check: the trait's name in results, what the sheet says, its RGB."""

    name: str
    text: str
    rgb: RGB
    outfit: bool = False
    same_as: str = ""  # the earlier trait of the same colour, which this one repeats


@dataclass(frozen=True)
class _View:
    """What a shot is judged on: its picture, its face (None: not found, or the anchor has
    none), the anchor's colours for every trait, the light its request asks for and the gain
    that light was measured to put on the character (None: none asked, or it changed
    nothing)."""

    shot: Picture
    face: Face | None
    known: list[Floats]
    request: ShotRequest
    lighting: str
    gain: Gain | None = None
    rivals: tuple[tuple[Floats, Floats], ...] = ()
    """The anchor's main colours (outlines, pupils too), each as the anchor shows it and in
    the scene's light."""

    def lit(self, base: Baseline) -> Baseline:
        """``base`` as the scene's light shows it (itself when there is no light)."""
        return base if self.gain is None else replace(base, lab=_relit(base.lab, self.gain))


class PaletteChecker(Checker):
    """Measures each sheet colour on the shot's subject against the anchor's (CIEDE2000)."""

    name = "palette"
    version = "1"
    billed = False
    offline = True

    def __init__(self, context: CheckerContext | None = None) -> None:
        super().__init__(context)
        self._anchors: dict[str, Picture] = {}
        self._skins: dict[int, Floats | None] = {}  # by anchor picture: see _implicit_skin

    def check(self, subject: CheckSubject) -> CheckOutcome:
        anchor = self._anchor(subject.anchor)
        try:
            shot = Picture.of(subject.image)
        except InvalidImageError as exc:
            raise CheckerError(str(exc), kind="unreadable") from None
        return self._measure(subject, anchor, shot)

    def check_cast(self, subjects: Sequence[CheckSubject]) -> list[CheckOutcome | CheckerError]:
        """Each member measured on its own figure: the picture's figures are found left to
        right (see :func:`~onmodel.vision.subject.find_figures`) and each member is given the
        one that shows most of its anchor's colours, all members at once so that two cannot
        take the same figure (of equals, cast order left to right, as the members were
        asked for). A member left without a figure, or matched to none of its colours, is
        reported not found: drifted, never a crash."""
        anchors: list[Picture | CheckerError] = []
        for subject in subjects:
            try:
                anchors.append(self._anchor(subject.anchor))
            except CheckerError as exc:
                anchors.append(exc)
        try:
            rgb = load_rgb(subjects[0].image)
            drawn = _drawn(rgb, subjects)
            found = drawn or find_figures(rgb, len(subjects))
        except InvalidImageError as exc:
            raise CheckerError(str(exc), kind="unreadable") from None
        figures = [Picture(figure) for figure in found]
        colourings = [
            _colouring(anchor) if isinstance(anchor, Picture) else [] for anchor in anchors
        ]
        given, fit = _assign(colourings, figures)
        # figures the set's furniture joins: cut them apart. Not a box the provider drew one
        # member in: its edges cut the furniture already, and a cut would only take away
        # what is unlike the anchor, the drifted hair and the hair clip on it
        for _ in range(0 if drawn else len(subjects) + 1):
            tries = []
            largest = max((_size(figure.subject) for figure in figures), default=0)
            for index, figure in enumerate(figures):
                for halves in split_figure(figure.subject):
                    if min(_size(half) for half in halves) < FIGURE_SHARE * largest:
                        continue  # a sliver: purer in colour than any whole figure
                    cut = [*figures[:index], *map(Picture, halves), *figures[index + 1 :]]
                    tries.append((*_assign(colourings, cut), cut))
            best = max(tries, key=lambda found: (len(found[0]), found[1]), default=None)
            if best is None or (len(best[0]), best[1]) <= (len(given), fit + _BETTER):
                break
            given, fit, figures = best
        answers: list[CheckOutcome | CheckerError] = []
        for row, (subject, anchor) in enumerate(zip(subjects, anchors, strict=True)):
            if isinstance(anchor, CheckerError):
                answers.append(anchor)
            elif row not in given:
                answers.append(_not_found(subject, len(figures)))
            else:
                answers.append(self._measure(subject, anchor, figures[given[row]]))
        return answers

    def _measure(self, subject: CheckSubject, anchor: Picture, shot: Picture) -> CheckOutcome:
        """Every sheet colour of ``subject`` on ``shot`` (its figure) against ``anchor``."""
        traits = _traits(subject.sheet, anchor)
        bases: dict[str, Baseline | None] = {}
        for trait in traits:
            if trait.same_as:
                continue
            taken = [b.lab for b in bases.values() if b is not None]
            bases[trait.name] = anchor.baseline(trait.rgb, taken)
        known = [b.lab for b in bases.values() if b is not None]
        shot.rescale(known)
        view = _View(shot, None, known, subject.request, _lighting(subject.request))
        if view.lighting:
            shown = [
                b for t in traits if (b := bases.get(t.name)) and not _requested(t, view.request)
            ]
            view = replace(view, gain=_scene_light(shot, shown))
            if view.gain is not None:
                known = [view.lit(b).lab for b in bases.values() if b is not None]
                main = dominant_colours(anchor.pixels, count=_RIVALS, merge=MATCH_RADIUS)
                rivals = tuple((to_lab(c), _relit(to_lab(c), view.gain)) for c, _ in main)
                view = replace(view, known=known, rivals=rivals)
            shot.rescale(known)
        skin = bases.get("skin_color") or self._implicit_skin(anchor, known)
        faces = anchor.faces(skin.lab) if skin is not None else []
        seen = True  # whether the shot shows a face: without one, its skin colour is lost
        if skin is not None and faces:
            bases = {name: base and anchor.place(base, faces[0]) for name, base in bases.items()}
            placed = [
                view.lit(base)
                for trait in traits
                if (base := bases.get(trait.name)) is not None
                and trait.name != "skin_color"
                and not _requested(trait, view.request)
            ]
            face, seen = _shot_face(shot, _skin_blobs(shot, skin, view), faces[0], placed)
            view = replace(view, face=face)
        results: dict[str, TraitResult] = {}
        for trait in traits:
            if trait.same_as:
                results[trait.name] = replace(results[trait.same_as], trait=trait.name)
                continue
            base = bases[trait.name]
            if base is None:
                results[trait.name] = TraitResult(
                    trait.name,
                    Verdict.NOT_VISIBLE,
                    note="the anchor does not show this colour",
                    expected=hex_of(trait.rgb),
                )
            elif trait.name == "skin_color" and faces and not seen:
                results[trait.name] = _faceless(trait, base, view)
            else:
                results[trait.name] = _judge(trait, base, view)
        return _outcome(list(results.values()), traits)

    def describe(
        self, anchor: Path, mime: str, *, current: ModelSheet, character_name: str = ""
    ) -> ModelSheet:
        """A sheet whose colours are the anchor's own, read off its subject (see
        :func:`onmodel.vision.describe.propose`); the words of ``current`` are kept."""
        try:
            return propose(self._anchor(anchor), current)
        except CheckerError as exc:
            raise InvalidImageError(str(exc)) from None

    def _implicit_skin(self, anchor: Picture, known: list[Floats]) -> Baseline | None:
        """For a sheet that names no skin colour (a character made from a prompt alone), the
        anchor's own, read as ``describe`` reads it: only to find the face to measure the
        other traits from, never reported as a trait of its own."""
        key = id(anchor)
        if key not in self._skins:
            proposed = propose(anchor, ModelSheet()).skin_color
            rgb = parse_colour(proposed) if proposed else None
            self._skins[key] = None if rgb is None else to_lab(rgb)
        lab = self._skins[key]
        return None if lab is None else anchor.baseline(to_rgb(lab), known)

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


def _drawn(rgb: NDArray[np.uint8], subjects: Sequence[CheckSubject]) -> list[Subject]:
    """Each member's figure where the provider says it drew it, when it says so for every
    member (empty: found from the pixels instead): the subject of that box, a margin around
    it, so the set's furniture it overlaps is cut by the box's edges, background there."""
    boxes = [subject.box for subject in subjects]
    if any(box is None for box in boxes):
        return []
    from PIL import Image

    with Image.open(subjects[0].image) as image:
        scale = rgb.shape[1] / image.width
    height, width = rgb.shape[:2]
    margin = round(_MARGIN * max(height, width))
    figures = []
    for box in boxes:
        assert box is not None
        left, top, right, bottom = (round(v * scale) for v in box)
        top, left = max(0, top - margin), max(0, left - margin)
        bottom, right = min(height, bottom + margin), min(width, right + margin)
        if bottom - top < 4 or right - left < 4:
            return []
        figures.append(find_subject(np.ascontiguousarray(rgb[top:bottom, left:right])))
    return figures


def _size(subject: Subject) -> int:
    return int(subject.mask.sum())


def _assign(
    colourings: Sequence[list[tuple[Floats, float]]], figures: Sequence[Picture]
) -> tuple[dict[int, int], float]:
    """Which figure each member is (by place in the cast, for those found) and how alike
    they are in all: the assignment most alike overall (the Hungarian method), two members
    never sharing a figure; of equals, the cast's order left to right."""
    from scipy.optimize import linear_sum_assignment

    likeness = np.zeros((len(colourings), len(figures)))
    for row, colouring in enumerate(colourings):
        for column, figure in enumerate(figures):
            likeness[row, column] = _likeness(colouring, figure)
    order = np.zeros_like(likeness)
    for row in range(min(len(colourings), len(figures))):
        order[row, round(row * (len(figures) - 1) / max(1, len(colourings) - 1))] = _ORDER
    members, chosen = linear_sum_assignment(likeness + order, maximize=True)
    given = {
        int(member): int(figure)
        for member, figure in zip(members, chosen, strict=True)
        if likeness[member, figure] >= _FOUND
    }
    return given, float(sum(likeness[member, figure] for member, figure in given.items()))


def _colouring(anchor: Picture) -> list[tuple[Floats, float]]:
    """The anchor's main colours (Lab) with the share of its subject each covers."""
    main = dominant_colours(anchor.pixels, count=_RIVALS, merge=MATCH_RADIUS)
    return [(to_lab(colour), share) for colour, share in main]


def _likeness(colouring: list[tuple[Floats, float]], figure: Picture) -> float:
    """How much of an anchor's colouring ``figure`` shows: over the anchor's main colours,
    the share of the figure in each, up to the anchor's own share of it (1.0: coloured as
    the anchor is). A member whose hair drifted still shows its skin and outfit."""
    if not len(figure.pixels):
        return 0.0
    return sum(min(share, float(figure.near(lab, MATCH_RADIUS).mean())) for lab, share in colouring)


def _not_found(subject: CheckSubject, figures: int) -> CheckOutcome:
    """A member the picture shows no figure of (it has ``figures`` for them all)."""
    name = subject.character_name or "this member"
    note = f"no figure coloured as {name}'s anchor among the picture's {figures}"
    return CheckOutcome(
        score=0,
        traits=[TraitResult("figure", Verdict.DRIFTED, note=note)],
        summary=f"drifted: {name} not found in the picture",
    )


def _traits(sheet: ModelSheet, anchor: Picture) -> list[_Trait]:
    """Every colour the sheet names, in sheet order; an anchor's own main colours when the
    sheet names none, so a sheet-less character is still checked against its anchor, the
    backdrop it stands on never among them (see :attr:`Picture.backdrop`).

    A palette entry that is the colour of a trait named before it (the hair's, an outfit's) is
    that trait again, judged as it is: a new outfit by request changes it too, and its
    baseline is not pushed onto some lesser fill because the trait already took the colour.
    """
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
        if rgb is None:
            continue
        same = [t.name for t in traits if distance(to_lab(t.rgb), to_lab(rgb)) <= MATCH_RADIUS]
        traits.append(_Trait(name, text, rgb, outfit, same[0] if same else ""))
    for item in sheet.must_keep:
        colours = colours_in(item)
        if colours:
            traits.append(_Trait(f"must_keep: {item}", item, colours[0]))
    if traits:
        return traits
    main = dominant_colours(anchor.pixels[~anchor.backdrop], count=_ANCHOR_COLOURS, min_share=0.04)
    return [_Trait(f"anchor colour: {hex_of(c)}", hex_of(c), c) for c, _ in main]


def _requested(trait: _Trait, request: ShotRequest) -> bool:
    """Whether the shot's request changes ``trait`` on purpose: a new outfit, its colours."""
    return trait.outfit and bool(request.outfit.strip())


def _skin_blobs(shot: Picture, skin: Baseline, view: _View) -> list[Face]:
    """The shot's blobs of the anchor's skin colour as the scene's light shows it that may be
    its face (see :meth:`Picture.faces`)."""
    lit = view.lit(skin).lab
    others = tuple(lab for lab in view.known if distance(lab, lit) > 1)
    return shot.faces(lit, others=others)


def _scene_light(shot: Picture, bases: list[Baseline]) -> Gain | None:
    """The gain the scene's light puts on the character's colours (None: no light keeps more
    of them than none does, as in a shot drawn without the scene's light on the character).

    Each pairing of an anchor colour with one of the shot's main colours proposes a gain; the
    one under which the most of ``bases`` keep their amount in their band of the character's
    height is the light, of equals the one under which they keep the most of it, then the
    mildest. Two colours at least must agree on it, so one recoloured trait cannot pass for
    the light.
    """
    seeds = dominant_colours(shot.pixels, count=_LIGHT_SEEDS, merge=MATCH_RADIUS, min_share=0.01)
    gains: set[Gain] = set()
    for base in bases:
        anchor = base.rgb
        if min(anchor) < _DARKEST:
            continue
        for colour, _ in seeds:
            gain = tuple(round(s / a, 2) for s, a in zip(colour, anchor, strict=True))
            low, high = min(gain), max(gain)
            if not (_GAIN_RANGE[0] <= low and high <= min(_GAIN_RANGE[1], _TINT * low)):
                continue
            if max(abs(math.log(g)) for g in gain) >= _MILDEST:
                gains.add((gain[0], gain[1], gain[2]))

    def kept(gain: Gain) -> tuple[int, float, float]:
        lit = [replace(b, lab=_relit(b.lab, gain)) for b in bases]
        shot.rescale([b.lab for b in lit])
        amounts = [shot.kept(b) for b in lit]
        mild = -sum(abs(math.log(g)) for g in gain)
        return sum(a >= KEPT for a in amounts), sum(min(a, 1.0) for a in amounts), mild

    plain = kept((1.0, 1.0, 1.0))[0]
    scored = sorted(((kept(gain), gain) for gain in gains), reverse=True)
    if not scored or scored[0][0][0] < max(2, plain + 1):
        return None
    return scored[0][1]


def _relit(lab: Floats, gain: Gain) -> Floats:
    """A colour under a light of ``gain`` on its red, green and blue."""
    rgb = to_rgb(lab)
    return to_lab(tuple(min(255, round(c * g)) for c, g in zip(rgb, gain, strict=True)))  # type: ignore[arg-type]


def _shot_face(
    shot: Picture, blobs: list[Face], anchor: Face, placed: list[Baseline]
) -> tuple[Face | None, bool]:
    """The shot's face, and whether it has one at all (False: the skin colour is lost).

    A skin blob is the face when at least half of the character's other colours (``placed``)
    sit around it where the anchor has them, so a pale cat or a planet beside the character
    is not taken for it; of several, the one with the most. A face much wider or taller than
    the ``anchor``'s has taken in some skin-coloured background (a sunset sky beside the jaw)
    and would misplace everything measured from it: the shot has a face, but it is not used.
    """
    fits = [sum(shot.kept(base, face=face) >= KEPT for base in placed) for face in blobs]
    faces = [
        (fit, face) for fit, face in zip(fits, blobs, strict=True) if fit and 2 * fit >= len(placed)
    ]
    shaped = [(fit, f) for fit, f in faces if abs(math.log(f.aspect / anchor.aspect)) <= _SHAPE]
    best = max(shaped, key=lambda item: item[0], default=None)
    return (best[1] if best else None), bool(faces)


def _lighting(request: ShotRequest) -> str:
    """The words of the request that change the light on the character ('' when none)."""
    found = _LIGHTING.search(" ".join((request.scene, request.text, request.action)).lower())
    return found.group(0) if found else ""


def _judge(trait: _Trait, base: Baseline, view: _View) -> TraitResult:
    expected = hex_of(base.rgb)
    if _requested(trait, view.request):
        return TraitResult(
            trait.name,
            Verdict.CHANGED,
            note=f"the shot asks for {view.request.outfit.strip()!r}",
            expected=expected,
        )
    if view.gain is not None:
        return _lit(trait, base, view)
    found = view.shot.find(base, view.known, face=view.face)
    if found.kept >= KEPT and found.lab is not None:
        return TraitResult(
            trait.name,
            Verdict.SAME,
            expected=expected,
            measured=hex_of(to_rgb(found.lab)),
            delta_e=round(distance(base.lab, found.lab), 1),
        )
    return _missing(trait, base, found)


def _missing(trait: _Trait, base: Baseline, found: Found) -> TraitResult:
    """A trait the shot does not keep: drifted, to what its place shows instead if anything."""
    if found.new is None:
        return TraitResult(
            trait.name,
            Verdict.DRIFTED,
            note=f"not found on the character ({found.kept:.0%} of the anchor's amount)",
            expected=hex_of(base.rgb),
        )
    return _drifted(
        trait,
        base,
        found.new,
        f"only {found.kept:.0%} of the anchor's amount; the same place shows another colour",
    )


def _lit(trait: _Trait, base: Baseline, view: _View) -> TraitResult:
    """A trait of a shot the scene's light falls on: every colour of the character is in that
    light, so the trait is looked for only as the light shows it (unlit, the anchor's skin
    may be the lit eyes' colour), and found there it changed by request."""
    lit = view.lit(base)
    rivals = tuple(lit for shown, lit in view.rivals if distance(shown, base.lab) > MATCH_RADIUS)
    found = view.shot.find(lit, view.known, face=view.face, rivals=rivals)
    if found.kept >= KEPT and found.lab is not None:
        return TraitResult(
            trait.name,
            Verdict.CHANGED,
            note=f"as the scene's light ({view.lighting}) shows it",
            expected=hex_of(base.rgb),
            measured=hex_of(to_rgb(found.lab)),
            delta_e=round(distance(base.lab, found.lab), 1),
        )
    return _missing(trait, base, found)


def _faceless(trait: _Trait, base: Baseline, view: _View) -> TraitResult:
    """The skin of a shot with no face of it: the anchor's face is its skin's largest blob,
    so a shot without one has lost the colour, however much the background shows of it."""
    new = view.shot.find(view.lit(base), view.known).new
    note = "no face of this colour on the character"
    if new is None:
        return TraitResult(trait.name, Verdict.DRIFTED, note=note, expected=hex_of(base.rgb))
    return _drifted(trait, base, new, note)


def _drifted(trait: _Trait, base: Baseline, new: Floats, note: str) -> TraitResult:
    return TraitResult(
        trait.name,
        Verdict.DRIFTED,
        note=note,
        expected=hex_of(base.rgb),
        measured=hex_of(to_rgb(new)),
        delta_e=round(distance(base.lab, new), 1),
    )


def _outcome(results: list[TraitResult], traits: list[_Trait]) -> CheckOutcome:
    """100 when every visible trait is the anchor's colour; each drifted colour costs
    :data:`DRIFT_PENALTY` once (the palette repeating the hair's colour is no second drift),
    and a kept colour that shifted a little a few points at most."""
    again = {t.name for t in traits if t.same_as}
    drifted = [r for r in results if r.verdict == Verdict.DRIFTED]
    kept = [r.delta_e or 0.0 for r in results if r.verdict == Verdict.SAME]
    shift = sum(min(r, 10.0) for r in kept) / len(kept) / 2 if kept else 0.0
    penalty = DRIFT_PENALTY * len([r for r in drifted if r.trait not in again])
    score = max(0, round(100 - penalty - shift))
    if drifted:
        summary = "drifted: " + ", ".join(r.trait for r in drifted)
    elif kept:
        summary = f"on model: {len(kept)} colour{'s' if len(kept) != 1 else ''} as the anchor's"
    elif any(r.verdict == Verdict.CHANGED for r in results):
        summary = "on model: every colour as the request (its outfit, its light) changes it"
    else:
        summary = "nothing to compare: the anchor shows none of the sheet's colours"
    return CheckOutcome(score=score, traits=results, summary=summary)
