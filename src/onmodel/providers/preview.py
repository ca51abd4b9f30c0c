"""The offline ``preview`` provider: a deterministic cartoon drawn from the model sheet.

It exists so that everything around image generation (sessions, lineage, batches, exports, the
``demo`` command and every test) works without an API key, without network and without cost. It
is not trying to be art: it is trying to make the *workflow* legible. So the character's
invariants (hair, eyes, skin, default outfit) are drawn with exact colours that never change from
shot to shot, while whatever a shot asks for (expression, pose, prop, outfit, scene) is drawn in a
way a human can see at a glance and a test can detect in pixels.

Determinism is a feature, not an accident: the same request always yields the same bytes, so the
content-addressed blob store deduplicates re-runs and tests can compare digests. Nothing here
reads the clock, the environment, system fonts or an unseeded random generator. Variations of one
request (a shot list's ``repeat: 3``) are told apart the same way: each take is captioned with its
number ("take 2/3"), so the three differ in bytes and at a glance while the character stays the
same.

The must_keep items it recognises (a hair clip, freckles, glasses, a scarf...) are drawn the same
way in every image, and a turnaround's views turn the figure. For checks and retakes a request can
also go off model on cue: ``params["drift"]`` (see :func:`drift_params`) recolours a trait or
leaves out must_keep items on chosen takes, a test knob every other provider refuses.

A shot of several (its cast) draws every figure side by side in cast order, each from its own
sheet (a creature as an animal, a prop as the object it names), in front of its set, drawn
from the set's sheet: palette walls and floor, fixed objects where the layout puts them. A
set's anchor is that place, empty. The result's ``returned["figures"]`` says where each member
was drawn, so a check can look at each one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from PIL import Image, ImageColor, ImageDraw, ImageFont

from onmodel.errors import ValidationError
from onmodel.kinds import SET
from onmodel.providers.base import (
    VIEWS,
    CastMember,
    GenerationRequest,
    GenerationResult,
    Provider,
    ProviderError,
)
from onmodel.sheet import COLOUR_WORDS, ModelSheet, ShotRequest, take_name

if TYPE_CHECKING:
    from onmodel.capabilities import ModelCapability

RGB = tuple[int, int, int]
Point = tuple[float, float]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

Expression = Literal["neutral", "smile", "crying", "sad", "angry", "surprised"]
Pose = Literal["stand", "arms_up", "wave", "guitar", "laptop", "selfie", "run"]
Pet = Literal["dog", "cat"]
HairStyle = Literal["short", "long", "bob", "ponytail", "twintails", "bun", "spiky", "bald"]

DEFAULT_SIZE: tuple[int, int] = (512, 512)
MAX_SIDE = 512  # a preview is a thumbnail of intent; bigger only costs time and disk
MIN_SIDE = 128  # below this the face stops being readable
MIN_SHORT_SIDE = 64

_PLAIN_BACKGROUND: RGB = (246, 244, 239)
_LINE: RGB = (59, 48, 64)
_WHITE: RGB = (255, 255, 255)
_MOUTH: RGB = (110, 42, 52)
_TONGUE: RGB = (232, 122, 132)
_TEAR: RGB = (120, 196, 245)
_BLUSH: RGB = (255, 150, 160)
_PET_EYES: RGB = (30, 24, 28)

# Fallbacks chosen by a hash of the character's name: a sheet that leaves a colour empty still
# gets the same colour in every shot, and different characters still look different.
_HAIR_DEFAULTS: tuple[str, ...] = (
    "#2b1d14",
    "#5a3825",
    "#8b4a2b",
    "#c9642b",
    "#e8c872",
    "#1a1a1a",
    "#6b4226",
    "#b03060",
    "#3b5ba5",
)
_EYE_DEFAULTS: tuple[str, ...] = ("#3b7dd8", "#2e8b57", "#6b4226", "#8e7618", "#7b3fa0", "#1f7a8c")
_SKIN_DEFAULTS: tuple[str, ...] = ("#ffe0c8", "#f7cfae", "#e8b48f", "#c68a63", "#9a6544", "#ffd9b8")
_OUTFIT_DEFAULTS: tuple[str, ...] = (
    "#e4572e",
    "#2e86ab",
    "#f2a541",
    "#3bb273",
    "#7768ae",
    "#e15a97",
    "#17bebb",
    "#d7263d",
)
_BOTTOM_DEFAULTS: tuple[str, ...] = ("#34495e", "#3c5a8a", "#4a4a55", "#7a6a53", "#2f3e46")
_PET_DEFAULTS: tuple[str, ...] = ("#c8965a", "#8b5a2b", "#f0e6d8", "#3a3330", "#e0b25c")

_EXPRESSIONS: tuple[tuple[Expression, str], ...] = (
    ("crying", r"\bcr(?:y|ies|ied|ying)\b|\btear|\bweep|\bsob"),
    ("angry", r"\bang(?:ry|er)|\bmad\b|\bfurious|\bannoyed|\bgrump|\brage|\bscowl|\bcross\b"),
    ("surprised", r"\bsurpris|\bshock|\bastonish|\bamaz|\bstartl|\bgasp|\bwow\b"),
    ("sad", r"\bsad|\bunhapp|\bupset|\bgloom|\bsorrow|\bmelanchol|\bdepress|\blonely"),
    ("smile", r"\bsmil|\bhapp|\blaugh|\bgrin|\bjoy|\bcheer|\bglad|\bdelight|\bexcit"),
    ("neutral", r"\bneutral|\bcalm|\bserious|\bblank"),
)
_POSES: tuple[tuple[Pose, str], ...] = (
    ("guitar", r"guitar|ukulele"),
    ("laptop", r"laptop|computer|\bpc\b|typing|\bcoding|programming"),
    ("selfie", r"selfie|\bphone"),
    ("run", r"\brun|\bjog|\bsprint|\bsports?\b|\bexercis|\bworkout|\bmarathon"),
    ("wave", r"\bwav(?:e|es|ed|ing)\b|\bhello\b|\bgreet"),
    ("arms_up", r"\barms? up|\braise|\braising|\bcheer|\bcelebrat|\bhooray|\bvictory|\bjump"),
)
_PETS: tuple[tuple[Pet, str], ...] = (
    ("dog", r"\bdogs?\b|\bpupp|\bpup\b|\bdoggo"),
    ("cat", r"\bcats?\b|\bkitten|\bkitty"),
)
_HAIR_STYLES: tuple[tuple[HairStyle, str], ...] = (
    ("bald", r"\bbald|\bno hair|\bshaved head"),
    ("twintails", r"\btwin|\bpigtail"),
    ("ponytail", r"\bpony"),
    ("bun", r"\bbuns?\b|\bupdo"),
    ("spiky", r"\bspik|\bmessy"),
    ("bob", r"\bbob\b|\bshoulder"),
    ("long", r"\blong|\bflowing"),
    ("short", r"\bshort|\bcrop|\bbuzz|\bpixie"),
)
_SPORTY = r"sport|track|athlet|\bgym|jersey|football|soccer|running|\bjog"
_ONE_PIECE = r"tracksuit|jumpsuit|overall|uniform|\bsuit\b|onesie|dress|robe|kimono|pyjama|pajama"
_SKIRT = r"dress|skirt|kimono|robe"


def parse_colour(value: str) -> RGB | None:
    """Read one colour the way users write them in sheets: a word, a CSS name or a hex code.

    ``COLOUR_WORDS`` wins over CSS so that "blonde" or "red" mean the same shade the prompt
    composer describes; phrases ("dark brown", "long red hair") fall back to their first colour
    word so a sheet written in prose still yields a colour.
    """
    text = value.strip().lower()
    if not text:
        return None
    candidates = [text, re.sub(r"[\s_-]+", "", text)]
    candidates += re.findall(r"#[0-9a-f]{6}\b|#[0-9a-f]{3}\b|[a-z]+", text)
    for candidate in candidates:
        rgb = _single_colour(candidate)
        if rgb is not None:
            return rgb
    return None


def colours_in(text: str) -> list[RGB]:
    """Every colour mentioned in free text, in order, so "red and white tracksuit" has two.

    Two-word CSS names ("light blue", "dark-green") are tried before their single words.
    """
    found: list[RGB] = []
    tokens = re.findall(r"#[0-9a-f]{6}\b|#[0-9a-f]{3}\b|[a-z]+", text.lower())
    index = 0
    while index < len(tokens):
        pair = "".join(tokens[index : index + 2]) if index + 1 < len(tokens) else ""
        rgb = _single_colour(pair) if pair and not pair.startswith("#") else None
        if rgb is not None:
            index += 2
        else:
            rgb = _single_colour(tokens[index])
            index += 1
        if rgb is not None and rgb not in found:
            found.append(rgb)
    return found


def _single_colour(token: str) -> RGB | None:
    """One token to RGB; only known names and colour syntax, so "hair" is never a colour."""
    token = COLOUR_WORDS.get(token, token)
    if not token.startswith(("#", "rgb(", "hsl(", "hsv(")) and token not in ImageColor.colormap:
        return None
    try:
        rgb = ImageColor.getrgb(token)
    except ValueError:
        return None
    return (rgb[0], rgb[1], rgb[2])


# --- drift: going off model on purpose ----------------------------------------------------------

DRIFT_COLOURS: Mapping[str, str] = {
    "hair_color": "hair",
    "eye_color": "eyes",
    "skin_color": "skin",
    "outfit_color": "top",
}
"""The ``drift`` keys that recolour a trait, and the :class:`CharacterLook` field each one sets
(``outfit_color`` is the top, the garment the sheet's first outfit colour describes)."""
DRIFT_KEYS: tuple[str, ...] = (*DRIFT_COLOURS, "drop", "takes")


@dataclass(frozen=True)
class Drift:
    """What a request's ``params["drift"]`` asks the preview to get wrong, read and checked.

    A real model drifts by accident; checks, retakes and the demo need it to happen on cue and
    identically every run, so the fault is a parameter: recolour a trait, leave out must-keep
    items, on chosen takes only.
    """

    colours: tuple[tuple[str, RGB], ...] = ()  # (CharacterLook field, colour drawn instead)
    drop: tuple[str, ...] = ()  # must_keep texts (lower case) whose items are left out
    drop_all: bool = False
    takes: frozenset[int] | None = None  # None: every take drifts

    def applies_to(self, variation: int) -> bool:
        return self.takes is None or variation in self.takes

    def recolour(self, look: CharacterLook) -> CharacterLook:
        colours = dict(self.colours)
        return dataclasses.replace(
            look,
            hair=colours.get("hair", look.hair),
            eyes=colours.get("eyes", look.eyes),
            skin=colours.get("skin", look.skin),
            top=colours.get("top", look.top),
        )

    def drops(self, item: str) -> bool:
        """An item is dropped by "all", by its own text, or by a part of it ("hair clip")."""
        text = item.strip().lower()
        return self.drop_all or any(part in text for part in self.drop)


def drift_problems(value: object) -> list[str]:
    """Everything wrong with a ``drift`` param, each as a phrase (empty: it can be drawn)."""
    if not isinstance(value, Mapping):
        return [f"drift must be a mapping of {', '.join(DRIFT_KEYS)}, not {value!r}"]
    problems: list[str] = []
    for key, item in value.items():
        if key not in DRIFT_KEYS:
            problems.append(f"drift: unknown key {key!r} (use {', '.join(DRIFT_KEYS)})")
        elif key in DRIFT_COLOURS and (not isinstance(item, str) or parse_colour(item) is None):
            problems.append(f"drift: {key} {item!r} is not a colour (a CSS name or hex code)")
    drop = value.get("drop")
    if drop is not None and drop != "all":
        if isinstance(drop, str) or not isinstance(drop, Sequence):
            problems.append(f"drift: drop must be a list of must_keep items or 'all', not {drop!r}")
        elif not drop or not all(isinstance(i, str) and i.strip() for i in drop):
            problems.append(f"drift: drop must name must_keep items as text, not {list(drop)!r}")
    takes = value.get("takes")
    if takes is not None and (
        isinstance(takes, str)
        or not isinstance(takes, Sequence)
        or not takes
        or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in takes)
    ):
        problems.append(f"drift: takes must be a list of take numbers from 1, not {takes!r}")
    if not problems and not any(key in value for key in (*DRIFT_COLOURS, "drop")):
        problems.append(f"drift changes nothing: give one of {', '.join(DRIFT_KEYS[:-1])}")
    return problems


def parse_drift(value: object) -> Drift | None:
    """Read a ``drift`` param (None when absent); a malformed one is refused in one line."""
    if value is None:
        return None
    problems = drift_problems(value)
    if problems:
        raise ValidationError("; ".join(problems))
    assert isinstance(value, Mapping)  # drift_problems refuses anything else
    colours = tuple(
        (field, _parsed(value[key])) for key, field in DRIFT_COLOURS.items() if key in value
    )
    drop = value.get("drop")
    takes = value.get("takes")
    return Drift(
        colours=colours,
        drop=tuple(i.strip().lower() for i in drop) if isinstance(drop, list | tuple) else (),
        drop_all=drop == "all",
        takes=frozenset(takes) if takes is not None else None,
    )


def drift_params(*, takes: Iterable[int] | None = None, **changes: object) -> dict[str, Any]:
    """Request params that make the preview drift: ``drift_params(hair_color="blue",
    takes=[2])``. Checked here, so a test or the demo learns of a typo before any shot."""
    drift: dict[str, Any] = dict(changes)
    if takes is not None:
        drift["takes"] = list(takes)
    parse_drift(drift)
    return {"drift": drift}


def _parsed(value: object) -> RGB:
    """A colour :func:`drift_problems` has already accepted."""
    rgb = parse_colour(str(value))
    assert rgb is not None
    return rgb


@dataclass(frozen=True)
class CharacterLook:
    """Resolved colours and shapes of one character in one shot.

    Tests and the gallery can use it to know which exact RGB values the renderer promised.
    """

    hair: RGB
    eyes: RGB
    skin: RGB
    top: RGB
    bottom: RGB
    shoes: RGB
    accent: RGB
    hair_style: HairStyle
    stripes: bool = False
    skirt: bool = False


def character_look(sheet: ModelSheet, name: str, outfit: str = "") -> CharacterLook:
    """Resolve the sheet into colours, falling back to name-hashed defaults.

    ``outfit`` is the shot's outfit override; only the clothes depend on it, so hair, eyes and
    skin are identical in every shot of the character.
    """
    key = _key(name)
    hair = parse_colour(sheet.hair_color) or next(iter(colours_in(sheet.hair)), None)
    eyes = parse_colour(sheet.eye_color)
    skin = parse_colour(sheet.skin_color)
    palette = [c for c in (parse_colour(p) for p in sheet.palette) if c is not None]
    accent = palette[0] if palette else _pick(_OUTFIT_DEFAULTS, key, "accent")

    outfit_text = outfit.strip() or sheet.outfit
    if outfit.strip():
        found = colours_in(outfit)
        top = found[0] if found else _pick(_OUTFIT_DEFAULTS, key, "outfit", outfit.lower())
        if len(found) > 1:
            bottom = found[1]
        elif re.search(_ONE_PIECE, outfit.lower()):
            bottom = top
        else:
            bottom = _pick(_BOTTOM_DEFAULTS, key, "outfit-bottom", outfit.lower())
    else:
        declared = [c for c in (parse_colour(o) for o in sheet.outfit_colors) if c is not None]
        declared = declared or colours_in(sheet.outfit)
        top = declared[0] if declared else _pick(_OUTFIT_DEFAULTS, key, "top")
        if len(declared) > 1:
            bottom = declared[1]
        elif declared and re.search(_ONE_PIECE, sheet.outfit.lower()):
            bottom = top
        else:
            bottom = _pick(_BOTTOM_DEFAULTS, key, "bottom")
    lowered = outfit_text.lower()
    return CharacterLook(
        hair=hair or _pick(_HAIR_DEFAULTS, key, "hair"),
        eyes=eyes or _pick(_EYE_DEFAULTS, key, "eyes"),
        skin=skin or _pick(_SKIN_DEFAULTS, key, "skin"),
        top=top,
        bottom=bottom,
        shoes=_shade(accent, 0.55) if palette else (58, 58, 70),
        accent=accent,
        hair_style=_hair_style(sheet.hair, key),
        stripes=bool(re.search(_SPORTY, lowered)),
        skirt=bool(re.search(_SKIRT, lowered)),
    )


def detect_expression(shot: ShotRequest) -> Expression:
    """The expression field speaks first; free text is only consulted when it says nothing."""
    for text in (shot.expression, shot.text, shot.action):
        for expression, pattern in _EXPRESSIONS:
            if re.search(pattern, text.lower()):
                return expression
    return "neutral"


def detect_pose(shot: ShotRequest) -> Pose:
    """Props beat generic poses: "running with a guitar" is more recognisable with the guitar."""
    text = " ".join((shot.pose, shot.action, shot.text)).lower()
    for pose, pattern in _POSES:
        if re.search(pattern, text):
            return pose
    return "stand"


def detect_pet(shot: ShotRequest) -> Pet | None:
    """A companion animal may be asked for anywhere, including the scene ("a dog park")."""
    text = " ".join((shot.pose, shot.action, shot.text, shot.scene)).lower()
    for pet, pattern in _PETS:
        if re.search(pattern, text):
            return pet
    return None


KeepKind = Literal[
    "glasses", "hair_clip", "bow_tie", "hat", "bow", "earrings", "scarf", "freckles", "badge"
]
_KEEPS: tuple[tuple[KeepKind, str], ...] = (
    ("glasses", r"glasses|spectacles|goggles"),
    ("hair_clip", r"\bhair ?(?:clip|pin|slide|grip)|\bbarrette|\bhairpin|\bbobby pin|\bclip\b"),
    ("bow_tie", r"\bbow ?-?tie"),
    ("hat", r"\b(?:hat|cap|beanie|beret|fedora|bonnet)s?\b"),
    ("bow", r"\bbows?\b|\bribbon"),
    ("earrings", r"\bear ?-?rings?\b|\bear ?studs?\b"),
    ("scarf", r"\bscar(?:f|ves)\b|\bbandana|\bneckerchief"),
    ("freckles", r"\bfreckl"),
    ("badge", r"\bbadge|\bpin\b|\bbrooch|\bstar\b"),
)
"""Must-keep items the preview can draw, first match wins: a "star hair clip" is a clip."""
_KEEP_COLOURS: dict[KeepKind, RGB] = {
    "glasses": (40, 40, 48),
    "hair_clip": (255, 200, 40),
    "bow_tie": (200, 40, 60),
    "hat": (60, 72, 110),
    "bow": (233, 84, 140),
    "earrings": (212, 175, 55),
    "scarf": (196, 52, 64),
    "badge": (255, 200, 40),
}
"""What an item is drawn in when its text names no colour (freckles: a shade of the skin)."""


@dataclass(frozen=True)
class Keep:
    """A must_keep item the preview draws: the same place and colour in every image."""

    kind: KeepKind
    colour: RGB | None  # None: freckles, in a shade of the skin
    side: int  # 1: the character's left (the viewer's right, facing us); -1: its right
    star: bool  # a star-shaped clip or badge


def must_keep_items(must_keep: Iterable[str]) -> list[tuple[str, Keep]]:
    """The sheet's must_keep items the preview can draw, each with its text; others (a scar,
    a tattoo) are simply not drawn.

    "Left" and "right" are the character's own, as model sheets mean them; an item that says
    neither sits on its left, the side a turnaround's profile shows.
    """
    found: list[tuple[str, Keep]] = []
    for text in must_keep:
        lowered = text.lower()
        kind = next((kind for kind, pattern in _KEEPS if re.search(pattern, lowered)), None)
        if kind is None:
            continue
        named = colours_in(lowered)
        colour = named[0] if named else _KEEP_COLOURS.get(kind)
        side = -1 if re.search(r"\bright\b", lowered) else 1
        found.append((text, Keep(kind, colour, side, bool(re.search(r"\bstars?\b", lowered)))))
    return found


def preview_size(params: dict[str, Any]) -> tuple[tuple[int, int], dict[str, Any]]:
    """Return the canvas size and the params that were honoured.

    The API sizes (1024x1536 and friends) are scaled down with their aspect ratio kept, because a
    preview only has to show intent; anything unparseable ("auto") falls back to the default.
    """
    raw = params.get("size")
    if not isinstance(raw, str):
        return DEFAULT_SIZE, {}
    match = re.fullmatch(r"\s*(\d{1,5})\s*[x×X]\s*(\d{1,5})\s*", raw)
    if not match:
        return DEFAULT_SIZE, {}
    width, height = int(match.group(1)), int(match.group(2))
    if width <= 0 or height <= 0:
        return DEFAULT_SIZE, {}
    long_side = max(width, height)
    scale = min(MAX_SIDE, max(MIN_SIDE, long_side)) / long_side
    size = (
        max(MIN_SHORT_SIDE, min(MAX_SIDE, round(width * scale))),
        max(MIN_SHORT_SIDE, min(MAX_SIDE, round(height * scale))),
    )
    return size, {"size": raw}


def render(request: GenerationRequest, size: tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
    """Draw the preview as a Pillow image (RGB), for callers that want pixels, not PNG bytes."""
    return _render(request, size)[0]


def _render(
    request: GenerationRequest, size: tuple[int, int]
) -> tuple[Image.Image, dict[str, Any]]:
    """The picture, and what the result returns besides its size: where each member of a
    cast was drawn (nothing for a character alone, whose picture is all its own)."""
    figures, where = _subjects(request)
    if _view_of(request) or (
        where is None and len(figures) == 1 and figures[0].kind == "character"
    ):
        return _render_character(request, size), {}
    return _render_cast(request, size, figures, where)


def _render_character(request: GenerationRequest, size: tuple[int, int]) -> Image.Image:
    """One character, as every preview was drawn before casts (and still is, byte for
    byte): anchors, views and a shot of its character alone."""
    width = size[0]
    shot = request.request
    view = _view_of(request)
    # Anchors and views are reference pictures: a plain background, and (views) a calm pose.
    is_anchor = request.kind == "anchor" or bool(view)
    look, keeps = _dressed(request.sheet, request.character_name, shot.outfit, _drift_for(request))
    expression = detect_expression(shot) if not view else "neutral"
    pose = detect_pose(shot) if not view else "stand"
    pet = detect_pet(shot) if not view else None

    name = request.character_name.strip() or "unnamed character"
    if shot.is_empty() and is_anchor:
        label = f"{view or 'anchor'}{' view' if view else ''}: plain background"
    else:
        label = shot.label()
    image, picture = _canvas(request, size, name, label)
    caption_top = picture.height
    draw = ImageDraw.Draw(picture)

    # The anchor's scene is always plain: a busy background in the reference ruins consistency.
    scene = "" if is_anchor else shot.scene
    # The figure is taller than wide: in a portrait canvas let the design grid overhang the
    # sides (only empty margin is lost) so the character fills the height instead of floating.
    span = 100.0 if pet or pose == "run" else 64.0
    side = min(width * 100 / span, caption_top * 0.97)
    frame = _Frame(x0=(width - side) / 2, y0=caption_top - side, unit=side / 100)
    rng = random.Random(_hash_int("scene", request.character_name, scene))
    _background(draw, width, caption_top, frame, scene, rng)

    centre = 40.0 if pet else 50.0
    ground = _ground_under(picture, frame.x(centre))
    _draw_character(draw, frame, look, centre, view, pose, expression, keeps, ground)
    if pet:
        colour = _pick(_PET_DEFAULTS, _key(request.character_name), pet)
        _Pet(draw, frame, colour, look.accent).draw(pet, 80.0, _shade(ground, 0.85))
    return _finished(image, picture, request)


def _dressed(
    sheet: ModelSheet, name: str, outfit: str, drift: Drift | None
) -> tuple[CharacterLook, list[Keep]]:
    """A character's look in a shot and the must_keep items drawn on it, as ``drift`` (if
    any) gets them wrong."""
    look = character_look(sheet, name, outfit)
    if drift is not None:
        look = drift.recolour(look)
    keeps = [
        item
        for text, item in must_keep_items(sheet.must_keep)
        if drift is None or not drift.drops(text)
    ]
    return look, keeps


def _canvas(
    request: GenerationRequest, size: tuple[int, int], name: str, label: str
) -> tuple[Image.Image, Image.Image]:
    """The image with its caption drawn, and the picture to draw above the caption: scene
    and figures get their own canvas so nothing (rain, a tail) can bleed into the caption."""
    width, height = size
    image = Image.new("RGB", (width, height), _PLAIN_BACKGROUND)
    caption_top = _caption(ImageDraw.Draw(image), width, height, name, _tag(request), label)
    return image, Image.new("RGB", (width, caption_top), _PLAIN_BACKGROUND)


def _finished(image: Image.Image, picture: Image.Image, request: GenerationRequest) -> Image.Image:
    """The picture set above the caption, badged when the request sent references."""
    image.paste(picture, (0, 0))
    references = len(request.inputs)
    if references and any(i.role == "anchor" for i in request.inputs):
        _badge(ImageDraw.Draw(image), image.width, f"ref ×{references}")
    return image


def _ground_under(picture: Image.Image, x: float) -> RGB:
    """The colour a figure standing at ``x`` stands on: what its shadow darkens."""
    return _as_rgb(picture.getpixel((max(0, min(picture.width - 1, round(x))), picture.height - 2)))


def _draw_character(
    draw: ImageDraw.ImageDraw,
    frame: _Frame,
    look: CharacterLook,
    centre: float,
    view: str,
    pose: Pose,
    expression: Expression,
    keeps: Sequence[Keep],
    ground: RGB,
) -> None:
    """One character, shadow first and must_keep items last: alone or one of a cast."""
    painter = _Figure(draw, frame, look, centre, view)
    painter.shadow(_shade(ground, 0.85))
    if pose == "run":
        painter.speed_lines(_shade(ground, 0.8))
    painter.body(pose)
    if view in ("three-quarter", "side"):
        painter.turned_face()
    elif view != "back":
        painter.face(expression)
    for item in keeps:
        painter.keep(item)


def _drift_for(request: GenerationRequest) -> Drift | None:
    """The request's drift when this take is one it names (None: drawn on model).

    A ``drop`` that matches none of the sheet's must_keep items is refused rather than
    ignored: the take would come out on model while the test or demo believed it drifted.
    """
    drift = parse_drift(request.params.get("drift"))
    if drift is None:
        return None
    items = [item.strip().lower() for item in request.sheet.must_keep]
    unmatched = [part for part in drift.drop if not any(part in item for item in items)]
    if unmatched:
        kept = "; ".join(request.sheet.must_keep) or "none"
        raise ValidationError(
            f"drift: drop {unmatched[0]!r} matches no must_keep item (the sheet keeps: {kept})"
        )
    return drift if drift.applies_to(request.variation) else None


def _view_of(request: GenerationRequest) -> str:
    """The view a request shows ("" for an ordinary anchor or shot; a view with none given
    is the front); an unknown one is refused rather than drawn as the front."""
    if request.view and request.view not in VIEWS:
        raise ValidationError(f"unknown view {request.view!r}; use {', '.join(VIEWS)}")
    return request.view or ("front" if request.kind == "view" else "")


def _tag(request: GenerationRequest) -> str:
    """The caption's corner: "anchor", "side view", "shot", or which take of several."""
    if _view_of(request):
        return f"{_view_of(request)} view"
    if request.kind == "anchor":
        return "anchor"
    if request.variations > 1:
        return take_name(request.variation, request.variations)
    return "shot"


def encode_png(image: Image.Image) -> bytes:
    """PNG with fixed options and no metadata chunks, so equal pixels mean equal bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


class PreviewProvider(Provider):
    """Offline stand-in for an image API; also what ``onmodel demo`` and the tests run on."""

    name = "preview"
    billed = False
    offline = True

    def param_problems(self, params: Mapping[str, Any], capability: ModelCapability) -> list[str]:
        """The preview draws the ``drift`` test knob, so it checks its shape instead of
        refusing it."""
        drift = params.get("drift")
        return [] if drift is None else drift_problems(drift)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Render the request; the anchor image (if attached) is never read, only counted.

        Drawing from the sheet instead of the attached image is what keeps the preview stable:
        reading pixels back would let small drawing changes compound along a lineage.
        """
        size, honoured = preview_size(request.params)
        try:
            image, placed = _render(request, size)
        except ValidationError as exc:
            raise ProviderError(str(exc), kind="invalid_request") from exc
        data = encode_png(image)
        if request.params.get("drift") is not None:
            honoured["drift"] = request.params["drift"]  # the record says the fault was asked
        return GenerationResult(
            data=data,
            format="png",
            sent_params=honoured,
            revised_prompt=None,
            usage=None,
            returned={"size": f"{size[0]}x{size[1]}", "output_format": "png", **placed},
        )


# --- a cast: several figures in a set -----------------------------------------------------------


def _subjects(request: GenerationRequest) -> tuple[tuple[CastMember, ...], CastMember | None]:
    """Who the picture shows, left to right, and where: the request's cast (figures, then
    its set), or else its one subject (an anchor's), a set's being the place with no one."""
    if request.cast:
        figures = tuple(member for member in request.cast if member.kind != SET)
        return figures, next((member for member in request.cast if member.kind == SET), None)
    alone = CastMember(
        id=0,
        slug="",
        name=request.character_name,
        kind=request.subject_kind,
        sheet=request.sheet,
    )
    return ((), alone) if alone.kind == SET else ((alone,), None)


_CHARACTER_SPAN = 64.0  # design-grid units a character needs across (arms, hair, a guitar)
_CREATURE_SCALE = 1.5  # a pet drawn as a cast member, against a character's grid
_CREATURE_BOX: tuple[float, float, float, float] = (33.0, 64.0, 67.0, 97.0)
"""Where a creature drawn at x 51 lies in its grid: tail, ears and paws included."""
_FIGURE_BOX: tuple[float, float, float, float] = (22.0, 2.0, 78.0, 97.0)


def _render_cast(
    request: GenerationRequest,
    size: tuple[int, int],
    figures: tuple[CastMember, ...],
    where: CastMember | None,
) -> tuple[Image.Image, dict[str, Any]]:
    """Several figures side by side in cast order, each from its own sheet, in front of the
    set drawn from its sheet; or a creature, a prop or a set alone (their anchors).

    The shot's pose, outfit and drift are the first figure's (the one the request's sheet
    describes); every character shares its expression; the others stand in their own
    clothes. Returns, for a shot with a cast, where each member was drawn.
    """
    width = size[0]
    shot = request.request
    is_anchor = request.kind == "anchor"
    named = [member.name.strip() or "unnamed" for member in figures]
    names = " & ".join([", ".join(named[:-1]), *named[-1:]] if len(named) > 2 else named)
    place = where.name.strip() if where is not None else ""
    name = f"{names} in {place}" if names and place else names or place or "unnamed place"
    if shot.is_empty() and is_anchor:
        label = "anchor: the empty place" if not figures else "anchor: plain background"
    else:
        label = shot.label()
    image, picture = _canvas(request, size, name, label)
    caption_top = picture.height
    draw = ImageDraw.Draw(picture)
    if where is not None:
        _set_backdrop(draw, width, caption_top, where)
    else:
        scene = "" if is_anchor else shot.scene
        side = min(width, caption_top * 0.97)
        frame = _Frame(x0=(width - side) / 2, y0=caption_top - side, unit=side / 100)
        rng = random.Random(_hash_int("scene", request.character_name, scene))
        _background(draw, width, caption_top, frame, scene, rng)

    drift = _drift_for(request)
    placed: list[dict[str, Any]] = []
    for index, (member, frame) in enumerate(_frames(figures, where, width, caption_top)):
        if member.kind == "creature":
            box = _draw_creature(draw, picture, frame, member)
        elif member.kind == "prop":
            box = _draw_prop(draw, frame, member)
        else:
            first = index == 0
            look, keeps = _dressed(
                member.sheet, member.name, shot.outfit if first else "", drift if first else None
            )
            pose = detect_pose(shot) if first else "stand"
            ground = _ground_under(picture, frame.x(50))
            expression = detect_expression(shot)
            _draw_character(draw, frame, look, 50.0, "", pose, expression, keeps, ground)
            box = frame.box(*_FIGURE_BOX)
        placed.append({"member": member.slug, "kind": member.kind, "box": _clamped(box, picture)})
    image = _finished(image, picture, request)
    if not request.cast:
        return image, {}
    returned: dict[str, Any] = {"figures": placed}
    if where is not None:
        returned["set"] = {"member": where.slug, "box": [0, 0, width, caption_top]}
    return image, returned


def _frames(
    figures: Sequence[CastMember], where: CastMember | None, width: int, height: int
) -> list[tuple[CastMember, _Frame]]:
    """Each figure's design grid, left to right in cast order, standing on the same ground.

    Side by side, everyone shares one scale, the one that fits a character in its share of
    the width (a creature is drawn larger on it, being smaller in its grid); a creature or a
    prop alone, with no set, fills the picture instead.
    """
    if where is None and len(figures) == 1 and figures[0].kind != "character":
        member = figures[0]
        x0, y0, x1, y1 = _CREATURE_BOX if member.kind == "creature" else _prop_box(member)
        unit = min(width * 0.7 / (x1 - x0), height * 0.7 / (y1 - y0))
        centre = (x0 + x1) / 2
        return [(member, _Frame(width / 2 - centre * unit, height * 0.92 - y1 * unit, unit))]
    share = width / max(1, len(figures))
    unit = min(share * 100 / _CHARACTER_SPAN, height * 0.97) / 100
    ground = height - 5 * unit  # where a character's feet are, at 95 in its grid
    frames: list[tuple[CastMember, _Frame]] = []
    for index, member in enumerate(figures):
        centre = share * (index + 0.5)
        scale = unit * (_CREATURE_SCALE if member.kind == "creature" else 1.0)
        frames.append((member, _Frame(centre - 50 * scale, ground - 95 * scale, scale)))
    return frames


def _clamped(box: tuple[float, float, float, float], picture: Image.Image) -> list[int]:
    """A drawn box in whole pixels, inside the picture (the caption strip is no one's)."""
    x0, y0, x1, y1 = box
    return [
        max(0, math.floor(x0)),
        max(0, math.floor(y0)),
        min(picture.width, math.ceil(x1)),
        min(picture.height, math.ceil(y1)),
    ]


def _subject_text(member: CastMember) -> str:
    """What a member is, in words, for the preview to recognise: its name and species."""
    return f"{member.name} {member.sheet.species}".lower()


def _surface(member: CastMember, *fallbacks: str) -> RGB:
    """A creature's fur or a prop's surface: the sheet's skin colour ("skin, fur or surface
    colour"), else its hair, palette or outfit colour, else one its name picks."""
    sheet = member.sheet
    for text in (sheet.skin_color, sheet.hair_color, *sheet.palette, *sheet.outfit_colors):
        colour = parse_colour(text)
        if colour is not None:
            return colour
    return _pick(fallbacks, _key(member.name), "surface")


def _draw_creature(
    draw: ImageDraw.ImageDraw, picture: Image.Image, frame: _Frame, member: CastMember
) -> tuple[float, float, float, float]:
    """An animal on four legs with ears and a tail, in its sheet's colour, wearing its
    collar: a cat if its name or species says so, otherwise a dog."""
    text = _subject_text(member)
    kind: Pet = next((pet for pet, pattern in _PETS if re.search(pattern, text)), "dog")
    fur = _surface(member, *_PET_DEFAULTS)
    worn = [
        colours_in(item)
        for item in member.sheet.must_keep
        if re.search(r"collar|scarf|bandana|harness|ribbon|\bbow\b|\btag\b", item.lower())
    ]
    palette = [c for c in (parse_colour(p) for p in member.sheet.palette) if c and c != fur]
    collar = next((found[0] for found in worn if found), None)
    collar = collar or (palette[0] if palette else _KEEP_COLOURS["scarf"])
    eyes = parse_colour(member.sheet.eye_color) or _PET_EYES
    ground = _ground_under(picture, frame.x(51))
    _Pet(draw, frame, fur, collar, eyes).draw(kind, 51.0, _shade(ground, 0.85))
    return frame.box(*_CREATURE_BOX)


def _prop_box(member: CastMember) -> tuple[float, float, float, float]:
    """Where a prop lies in its grid, standing at 95 and centred on 50."""
    width, height = _OBJECTS[_object_kind(_subject_text(member))].size
    return (50 - width / 2, 95 - height, 50 + width / 2, 95)


def _draw_prop(
    draw: ImageDraw.ImageDraw, frame: _Frame, member: CastMember
) -> tuple[float, float, float, float]:
    """A prop as the object its name or species says (a lamp, a chest...), in its colour."""
    kind = _object_kind(_subject_text(member))
    colour = _surface(member, *_OUTFIT_DEFAULTS)
    _draw_object(draw, kind, frame.x(50), frame.y(95), frame.unit, colour)
    return frame.box(*_prop_box(member))


# --- a set: the place, drawn from its sheet -----------------------------------------------------

ObjectKind = Literal[
    "bookcase",
    "wardrobe",
    "bed",
    "sofa",
    "desk",
    "table",
    "chair",
    "lamp",
    "window",
    "door",
    "plant",
    "rug",
    "picture",
    "clock",
    "tv",
    "ball",
    "box",
]


@dataclass(frozen=True)
class _Object:
    """How the preview draws one kind of object: the words that name it, its size in a
    set's units (a character is about 95 tall), its colour when none is named, and how far
    above the floor it hangs (None: it stands on the floor)."""

    pattern: str
    size: tuple[float, float]
    colour: RGB
    hangs: float | None = None
    textile: bool = False  # takes the set's accent colours (a bed's cover, a sofa, a rug)


_WOOD: RGB = (150, 104, 66)
_OBJECTS: dict[ObjectKind, _Object] = {
    "bookcase": _Object(r"book ?(?:case|shel(?:f|ves))|\bshel(?:f|ves)\b", (20, 40), _WOOD),
    "wardrobe": _Object(r"wardrobe|closet|cupboard|dresser|chest of drawers", (24, 42), _WOOD),
    "bed": _Object(r"\bbeds?\b|\bbunk|\bcot\b|\bfuton", (40, 18), (122, 160, 214), textile=True),
    "sofa": _Object(r"\bsofa|\bcouch|\bsettee|\barmchair", (38, 18), (176, 96, 88), textile=True),
    "desk": _Object(r"\bdesks?\b", (32, 17), _WOOD),
    "table": _Object(r"\btables?\b", (30, 16), _WOOD),
    "chair": _Object(r"\bchairs?\b|\bstools?\b", (12, 20), _WOOD),
    "lamp": _Object(r"\blamps?\b|\blantern|\blights?\b", (10, 36), (250, 214, 140)),
    "window": _Object(r"\bwindows?\b", (26, 24), (250, 248, 240), hangs=20),
    "door": _Object(r"\bdoors?\b", (18, 44), _WOOD),
    "plant": _Object(
        r"\bplants?\b|\bferns?\b|\bcact|\bflowers?\b|\bpalms?\b", (12, 24), (196, 98, 60)
    ),
    "rug": _Object(r"\brugs?\b|\bcarpet|\bmats?\b", (60, 8), (214, 120, 110), textile=True),
    "picture": _Object(
        r"\bpictures?\b|\bposters?\b|\bpainting|\bphoto|\bframe", (16, 12), (92, 70, 60), hangs=26
    ),
    "clock": _Object(r"\bclocks?\b", (10, 10), (70, 70, 80), hangs=38),
    "tv": _Object(r"\btv\b|\btelevision|\bscreen|\bmonitor", (22, 14), (40, 42, 50), hangs=18),
    "ball": _Object(r"\bballs?\b", (10, 10), (230, 80, 70)),
    "box": _Object(r"\bbox|\bchest|\bcrate|\btrunk|\bsuitcase|\bbag\b", (16, 12), _WOOD),
}
"""The objects a set's fixed_objects (and a prop) may name; first pattern wins on ties, so a
"chest of drawers" is a wardrobe and a "bookshelf" a bookcase, not a box or a shelf."""

_NOT_THE_OBJECT = r"\b(?:on|under|by|near|next to|beside|against|above|below|behind|in|at|with)\b"
"""Where the noun phrase that names an object ends: "a desk under the window" is a desk."""


def _object_kind(text: str) -> ObjectKind:
    """The object a phrase names: the last known noun before any preposition ("a desk lamp"
    is a lamp, "a lamp on the desk" too); a phrase that names none is a box."""
    head = re.split(_NOT_THE_OBJECT, text.lower(), maxsplit=1)[0]
    best: tuple[int, ObjectKind] | None = None
    for kind, spec in _OBJECTS.items():
        for match in re.finditer(spec.pattern, head):
            if best is None or match.start() > best[0]:
                best = (match.start(), kind)
    if best is not None:
        return best[1]
    anywhere = [kind for kind, spec in _OBJECTS.items() if re.search(spec.pattern, text.lower())]
    return anywhere[0] if anywhere else "box"


Side = Literal["left", "back", "right"]
_SIDE_ORDER: tuple[Side, ...] = ("back", "left", "right")  # where unplaced objects go first
_SIDES: tuple[tuple[Side, str], ...] = (
    ("left", r"\bleft\b"),
    ("right", r"\bright\b"),
    ("back", r"\bback\b|\brear\b|\bfar\b|\bcent(?:re|er)\b|\bmiddle\b|\bopposite\b"),
)


def _side_of(item: str, kind: ObjectKind, layout: str) -> Side | None:
    """Where an object stands: what its own words say ("a bed against the left wall"), else
    what the layout's clause that names it says, the first side after its name ("bed on the
    left, window and desk on the right": the window too is on the right)."""
    pattern = _OBJECTS[kind].pattern
    clauses = [item.lower()]
    clauses += [c for c in re.split(r"[.;,]", layout.lower()) if re.search(pattern, c)]
    for clause in clauses:
        named = re.search(pattern, clause)
        after = clause[named.end() :] if named else clause
        for text in (after, clause):
            found = [(m.start(), side) for side, p in _SIDES for m in re.finditer(p, text)]
            if found:
                return min(found)[1]
    return None


def _set_backdrop(draw: ImageDraw.ImageDraw, width: int, height: int, where: CastMember) -> None:
    """The set behind everyone: an outdoor place as its scene is drawn; otherwise a room in
    the sheet's palette (walls, then floor) with its fixed objects where the layout puts
    them, the same in every shot and in its anchor, the empty place."""
    sheet = where.sheet
    text = f"{where.name} {sheet.species} {sheet.layout}".lower()
    theme = next((name for name, pattern in _SCENES if re.search(pattern, text)), "indoor")
    unit = min(width, height) / 100
    if theme == "indoor":
        palette = [c for c in (parse_colour(p) for p in sheet.palette) if c is not None]
        wall = (
            palette[0]
            if palette
            else parse_colour(sheet.skin_color)
            or _hsl(_hash_int("set-wall", _key(where.name)) % 360, 0.4, 0.85)
        )
        floor = palette[1] if len(palette) > 1 else _shade(wall, 0.7)
        accents = palette[2:]
        floor_top = round(height * 0.68)
        draw.rectangle((0, 0, width, floor_top), fill=wall)
        draw.rectangle((0, floor_top, width, height), fill=floor)
        draw.rectangle((0, floor_top - unit * 1.6, width, floor_top), fill=_shade(wall, 0.8))
    else:
        span = min(width, height * 0.97)
        frame = _Frame(x0=(width - span) / 2, y0=height - span, unit=span / 100)
        rng = random.Random(_hash_int("set", _key(where.name)))
        _background(draw, width, height, frame, text, rng)
        floor_top, accents = round(frame.y(70)), []
    textiles = 0
    for item, kind, across in _arrangement(sheet):
        spec = _OBJECTS[kind]
        named = colours_in(item)
        colour = named[0] if named else spec.colour
        if spec.textile and accents and not named:
            colour, textiles = accents[textiles % len(accents)], textiles + 1
        if kind == "rug":
            _draw_object(draw, kind, width * across, floor_top + 22 * unit, unit, colour)
            continue
        half = (spec.size[0] / 2 + 1) * unit  # the whole object stays in the picture
        x = min(max(width * across, half), width - half) if 2 * half < width else width / 2
        base = floor_top - spec.hangs * unit if spec.hangs is not None else floor_top + 3 * unit
        _draw_object(draw, kind, x, base, unit, colour)


def _arrangement(sheet: ModelSheet) -> list[tuple[str, ObjectKind, float]]:
    """Each fixed object, its kind and where across the width it stands (a fraction), in
    drawing order: rugs, then what hangs on the walls, then what stands on the floor. An
    object that neither its words nor the layout place goes to the emptiest side."""
    items = [(item, _object_kind(item)) for item in sheet.fixed_objects]
    said = [_side_of(item, kind, sheet.layout) for item, kind in items]
    counts: Counter[Side] = Counter(side for side in said if side is not None)
    arranged: list[tuple[str, ObjectKind, float]] = []
    placed: Counter[tuple[bool, Side]] = Counter()  # a window hangs above a desk, not beside
    for (item, kind), side in zip(items, said, strict=True):
        if kind == "rug":  # lies in the middle of the floor, whatever is said
            arranged.append((item, kind, 0.5))
            continue
        emptiest: Side = min(_SIDE_ORDER, key=counts.__getitem__)
        if side is None:
            counts[emptiest] += 1
        where = (_OBJECTS[kind].hangs is not None, side or emptiest)
        arranged.append((item, kind, _x_of(where[1], placed[where])))
        placed[where] += 1
    return sorted(arranged, key=lambda each: _layer(each[1]))


def _layer(kind: ObjectKind) -> int:
    """Rugs lie under everything, wall things hang behind what stands on the floor."""
    return 0 if kind == "rug" else 1 if _OBJECTS[kind].hangs is not None else 2


def _x_of(side: Side, count: int) -> float:
    """Where across the width the ``count``-th object on one side stands (from 0): from the
    side wall inwards, or from the middle of the back wall outwards, one side then the other."""
    step = 0.18
    if side == "left":
        return 0.15 + step * count
    if side == "right":
        return 0.85 - step * count
    return 0.5 + step * ((count + 1) // 2) * (-1 if count % 2 else 1)


def _draw_object(
    draw: ImageDraw.ImageDraw, kind: ObjectKind, cx: float, base: float, u: float, colour: RGB
) -> None:
    """One object standing (or hanging) with its bottom at ``base``, ``u`` pixels a unit."""
    w, h = _OBJECTS[kind].size
    x0, x1, top = cx - w / 2 * u, cx + w / 2 * u, base - h * u
    line = _outline_of(colour)
    ow = max(1, round(0.4 * u))

    def rect(box: tuple[float, float, float, float], fill: RGB) -> None:
        draw.rectangle(box, fill=fill, outline=_outline_of(fill), width=ow)

    if kind in ("bookcase", "wardrobe", "door"):
        rect((x0, top, x1, base), colour)
        if kind == "bookcase":
            books = ((196, 64, 64), (64, 110, 186), (232, 180, 64), (80, 150, 96), (150, 90, 160))
            for shelf in range(3):
                y = top + (shelf + 1) * h * u / 3.4
                draw.rectangle((x0 + u, y - 1 * u, x1 - u, y), fill=_shade(colour, 0.7))
                for b in range(5):
                    bx = x0 + u * (1.5 + b * 3.2)
                    tall = 7 - (b + shelf) % 3
                    draw.rectangle(
                        (bx, y - 1 * u - tall * u, bx + 2.6 * u, y - 1 * u), books[(b + shelf) % 5]
                    )
        else:
            doors = 1 if kind == "door" else 2
            for i in range(doors):
                left = x0 + i * (x1 - x0) / doors
                panel = (
                    left + 1.5 * u,
                    top + 2 * u,
                    left + (x1 - x0) / doors - 1.5 * u,
                    base - 2 * u,
                )
                draw.rectangle(panel, outline=line, width=ow)
                knob = panel[2] - 1.5 * u if i == 0 else panel[0] + 1.5 * u
                ky = (top + base) / 2
                draw.ellipse((knob - u, ky - u, knob + u, ky + u), fill=(212, 175, 55))
    elif kind == "bed":
        rect((x0, top, x0 + 3 * u, base), _WOOD)
        rect((x0 + 2 * u, base - 10 * u, x1, base - 3 * u), _WOOD)
        rect((x0 + 3 * u, base - 12 * u, x1, base - 9 * u), (245, 242, 236))
        draw.ellipse(
            (x0 + 4 * u, base - 15 * u, x0 + 12 * u, base - 10 * u),
            fill=_WHITE,
            outline=line,
            width=ow,
        )
        rect((x0 + 13 * u, base - 12.5 * u, x1, base - 6 * u), colour)
        for leg in (x0 + 2 * u, x1 - 2 * u):
            draw.rectangle((leg - u, base - 3 * u, leg + u, base), fill=_shade(_WOOD, 0.7))
    elif kind == "sofa":
        rect((x0 + 3 * u, top, x1 - 3 * u, base - 8 * u), colour)
        rect((x0, base - 10 * u, x1, base - 2 * u), colour)
        for arm in (x0, x1 - 5 * u):
            rect((arm, base - 13 * u, arm + 5 * u, base - 2 * u), _shade(colour, 0.9))
        for foot in (x0 + 2 * u, x1 - 2 * u):
            draw.rectangle((foot - u, base - 2 * u, foot + u, base), fill=_LINE)
    elif kind in ("table", "desk"):
        rect((x0, top, x1, top + 2.5 * u), colour)
        for leg in (x0 + 1.5 * u, x1 - 3.5 * u):
            rect((leg, top + 2.5 * u, leg + 2 * u, base), _shade(colour, 0.85))
        if kind == "desk":
            drawers = (x1 - 12 * u, top + 2.5 * u, x1 - 1.5 * u, base)
            rect(drawers, _shade(colour, 0.92))
            for y in (top + 7 * u, top + 12 * u):
                draw.line((drawers[0] + 3 * u, y, drawers[2] - 3 * u, y), fill=line, width=ow)
    elif kind == "chair":
        rect((x0, top, x0 + 2.2 * u, base), colour)
        rect((x0, base - 10 * u, x1, base - 8 * u), colour)
        rect((x1 - 2.2 * u, base - 8 * u, x1, base), _shade(colour, 0.85))
    elif kind == "lamp":
        draw.ellipse((cx - 4 * u, base - 1.6 * u, cx + 4 * u, base), fill=_LINE)
        draw.rectangle((cx - 0.6 * u, top + 6 * u, cx + 0.6 * u, base - u), fill=_LINE)
        shade = [
            (cx - 5 * u, top + 8 * u),
            (cx + 5 * u, top + 8 * u),
            (cx + 3 * u, top),
            (cx - 3 * u, top),
        ]
        draw.polygon(shade, fill=colour, outline=line, width=ow)
    elif kind == "window":
        pane = (round(x0 + u), round(top + u), round(x1 - u), round(base - u))
        rect((x0, top, x1, base), colour)
        _gradient(draw, pane, *_DAY_SKY)
        draw.line((cx, top, cx, base), fill=colour, width=max(1, round(1.2 * u)))
        draw.line(
            (x0, (top + base) / 2, x1, (top + base) / 2), fill=colour, width=max(1, round(1.2 * u))
        )
    elif kind == "plant":
        draw.polygon(
            [
                (cx - 5 * u, base - 9 * u),
                (cx + 5 * u, base - 9 * u),
                (cx + 3.5 * u, base),
                (cx - 3.5 * u, base),
            ],
            fill=colour,
            outline=line,
            width=ow,
        )
        for dx, dy, rx, ry in (
            (0, 17, 3, 7),
            (-4, 14, 3, 5),
            (4, 14, 3, 5),
            (-2, 20, 2, 4),
            (2.5, 19.5, 2, 4),
        ):
            leaf = (60, 140, 70) if dx else (46, 120, 58)
            draw.ellipse(
                (
                    cx + (dx - rx) * u,
                    base - (dy + ry) * u,
                    cx + (dx + rx) * u,
                    base - (dy - ry) * u,
                ),
                fill=leaf,
                outline=_outline_of(leaf),
                width=ow,
            )
    elif kind == "rug":
        draw.ellipse((x0, top, x1, base), fill=colour, outline=line, width=ow)
        draw.ellipse(
            (x0 + 4 * u, top + 1.5 * u, x1 - 4 * u, base - 1.5 * u),
            outline=_mix(colour, _WHITE, 0.4),
            width=ow,
        )
    elif kind == "picture":
        rect((x0, top, x1, base), colour)
        inner = (
            round(x0 + 1.5 * u),
            round(top + 1.5 * u),
            round(x1 - 1.5 * u),
            round(base - 1.5 * u),
        )
        _gradient(draw, inner, *_DAY_SKY)
        draw.polygon(
            [
                (inner[0], inner[3]),
                (cx - 2 * u, top + 5 * u),
                (cx + u, inner[3] - 2 * u),
                (cx + 3 * u, top + 6 * u),
                (inner[2], inner[3]),
            ],
            fill=(120, 170, 110),
        )
    elif kind == "clock":
        draw.ellipse((x0, top, x1, base), fill=_WHITE, outline=colour, width=max(1, round(u)))
        cy = (top + base) / 2
        draw.line((cx, cy, cx, top + 2 * u), fill=_LINE, width=ow)
        draw.line((cx, cy, cx + 2.5 * u, cy), fill=_LINE, width=ow)
    elif kind == "tv":
        rect((x0, top, x1, base), colour)
        _gradient(
            draw,
            (round(x0 + u), round(top + u), round(x1 - u), round(base - u)),
            (60, 90, 140),
            (30, 40, 70),
        )
    elif kind == "ball":
        draw.ellipse((x0, top, x1, base), fill=colour, outline=line, width=ow)
        draw.arc((x0 + 2 * u, top, x1 - 2 * u, base), 250, 110, fill=_WHITE, width=max(1, round(u)))
    else:
        rect((x0, top + 3 * u, x1, base), colour)
        rect((x0 - 0.5 * u, top, x1 + 0.5 * u, top + 3.5 * u), _shade(colour, 0.85))
        draw.rectangle((cx - 1.2 * u, top, cx + 1.2 * u, base), fill=_mix(colour, _WHITE, 0.5))


# --- helpers -----------------------------------------------------------------------------------


def _key(name: str) -> str:
    """Hash input for a character, so "Mira" and " mira " get the same fallback colours."""
    return name.strip().lower() or "unnamed"


def _hash_int(*parts: str) -> int:
    """A stable integer from text; Python's ``hash()`` is salted per process, this is not."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _pick(options: Sequence[str], *parts: str) -> RGB:
    """Pick a fallback colour that depends only on ``parts`` (usually the character's name)."""
    rgb = _single_colour(options[_hash_int(*parts) % len(options)])
    assert rgb is not None  # the option tables only hold valid hex codes
    return rgb


def _hair_style(description: str, key: str) -> HairStyle:
    """Honour the words of the sheet; otherwise a name-hashed style so each character differs."""
    lowered = description.lower()
    for style, pattern in _HAIR_STYLES:
        if re.search(pattern, lowered):
            return style
    styles: tuple[HairStyle, ...] = ("short", "long", "bob", "ponytail", "bun")
    return styles[_hash_int(key, "hair-style") % len(styles)]


def _shade(colour: RGB, factor: float) -> RGB:
    return (
        max(0, min(255, round(colour[0] * factor))),
        max(0, min(255, round(colour[1] * factor))),
        max(0, min(255, round(colour[2] * factor))),
    )


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _as_rgb(pixel: Any) -> RGB:
    """``getpixel`` is typed loosely; the canvas is always RGB."""
    return (int(pixel[0]), int(pixel[1]), int(pixel[2]))


def _outline_of(colour: RGB) -> RGB:
    """A dark line that still belongs to the fill, softer than pure black on light colours."""
    return _mix(_shade(colour, 0.55), _LINE, 0.5)


@dataclass(frozen=True)
class _Frame:
    """Maps the figure's 100x100 design grid to pixels, so every size draws the same drawing."""

    x0: float
    y0: float
    unit: float

    def x(self, value: float) -> float:
        return self.x0 + value * self.unit

    def y(self, value: float) -> float:
        return self.y0 + value * self.unit

    def p(self, x: float, y: float) -> Point:
        return (self.x(x), self.y(y))

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (self.x(x0), self.y(y0), self.x(x1), self.y(y1))

    def w(self, value: float) -> int:
        return max(1, round(value * self.unit))


# --- background --------------------------------------------------------------------------------

_SCENES: tuple[tuple[str, str], ...] = (
    ("beach", r"beach|\bsea\b|seaside|ocean|coast|shore|island"),
    ("snow", r"snow|winter|\bski|mountain|\bice\b"),
    ("city", r"city|street|town|urban|\broad|\bshop|market|rooftop|downtown"),
    ("indoor", r"office|room|home|house|kitchen|caf[eé]|coffee|class|school|library|studio|desk"),
    ("stage", r"stage|concert|\bgig\b|\bclub\b|theat"),
    ("desert", r"desert|dune|canyon"),
    ("space", r"space|galaxy|planet|\bmoon\b"),
    ("forest", r"forest|woods|jungle|trees"),
    ("park", r"park|garden|meadow|field|grass|lawn|countryside|farm|picnic|outdoor|hill"),
)
_DAY_SKY: tuple[RGB, RGB] = ((140, 203, 240), (222, 241, 251))
_DUSK_SKY: tuple[RGB, RGB] = ((92, 76, 140), (247, 166, 96))
_NIGHT_SKY: tuple[RGB, RGB] = ((11, 16, 48), (42, 53, 104))
_RAIN_SKY: tuple[RGB, RGB] = ((128, 138, 152), (196, 202, 210))


def _background(
    draw: ImageDraw.ImageDraw,
    width: int,
    bottom: int,
    frame: _Frame,
    scene: str,
    rng: random.Random,
) -> None:
    """Paint the scene behind the figure. An empty scene stays plain, like a studio model sheet."""
    text = scene.lower()
    if not text.strip():
        draw.rectangle((0, 0, width, bottom), fill=_PLAIN_BACKGROUND)
        return
    theme = next((name for name, pattern in _SCENES if re.search(pattern, text)), "")
    night = bool(re.search(r"night|midnight|\bdark|starr", text)) or theme == "space"
    dusk = not night and bool(re.search(r"sunset|dusk|dawn|sunrise|evening|golden hour", text))
    rain = bool(re.search(r"\brain|storm|drizzle|shower", text))
    sky = _NIGHT_SKY if night else _DUSK_SKY if dusk else _RAIN_SKY if rain else _DAY_SKY
    horizon = round(frame.y(70))
    ground_factor = 0.55 if night else 0.85 if dusk else 1.0

    def ground(top: RGB, low: RGB, start: int = horizon) -> None:
        _gradient(
            draw, (0, start, width, bottom), _shade(top, ground_factor), _shade(low, ground_factor)
        )

    if theme == "indoor":
        wall = _shade((242, 228, 208), ground_factor)
        floor_top = round(frame.y(76))
        draw.rectangle((0, 0, width, floor_top), fill=wall)
        ground((201, 156, 110), (170, 124, 84), floor_top)
        window = (frame.x(4), frame.y(14), frame.x(26), frame.y(44))
        pane = (round(window[0]), round(window[1]), round(window[2]), round(window[3]))
        _gradient(draw, pane, sky[0], sky[1])
        draw.rectangle(window, outline=_shade(wall, 0.7), width=frame.w(1.2))
        middle = (window[0] + window[2]) / 2
        draw.line((middle, window[1], middle, window[3]), fill=_shade(wall, 0.7), width=frame.w(1))
        frame_box = frame.box(76, 18, 94, 34)
        draw.rectangle(frame_box, fill=(255, 250, 240), outline=_shade(wall, 0.6), width=2)
        draw.polygon(
            [frame.p(78, 32), frame.p(84, 23), frame.p(88, 29), frame.p(92, 32)],
            fill=(120, 170, 110),
        )
        return
    if theme == "stage":
        _gradient(draw, (0, 0, width, bottom), (43, 24, 64), (18, 10, 31))
        beam = [frame.p(42, -5), frame.p(58, -5), frame.p(80, 96), frame.p(20, 96)]
        draw.polygon(beam, fill=(88, 64, 104))
        ground((96, 62, 44), (70, 44, 30), round(frame.y(82)))
        return

    _gradient(draw, (0, 0, width, horizon), sky[0], sky[1])
    if night:
        for _ in range(40):
            x, y = rng.uniform(0, width), rng.uniform(0, horizon * 0.9)
            r = rng.choice((0.3, 0.4, 0.6)) * frame.unit
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 248, 220))
        draw.ellipse(frame.box(78, 6, 90, 18), fill=(250, 244, 214))
        draw.ellipse(frame.box(81, 5, 92, 16), fill=sky[0])
    elif theme not in ("city", "space") and not rain:
        sun = (255, 214, 102) if not dusk else (255, 190, 110)
        draw.ellipse(frame.box(80, 6, 94, 20), fill=sun)
        for _ in range(3):
            cx, cy = rng.uniform(0, width), rng.uniform(frame.y(8), frame.y(40))
            _cloud(draw, cx, cy, frame.unit * rng.uniform(3.0, 4.5), _mix(sky[1], _WHITE, 0.7))

    if theme == "beach":
        sea_bottom = round(frame.y(78))
        _gradient(draw, (0, horizon, width, sea_bottom), (52, 140, 200), (98, 190, 222))
        ground((243, 220, 170), (232, 201, 138), sea_bottom)
        for i in range(3):
            y = frame.y(73 + i * 2)
            draw.line((0, y, width, y), fill=(170, 220, 238), width=1)
    elif theme == "snow":
        peaks = [(-10, 70), (8, 46), (24, 70), (30, 70), (50, 38), (72, 70), (78, 70), (96, 48)]
        for i in range(0, len(peaks) - 2, 3):
            a, b, c = peaks[i], peaks[i + 1], peaks[i + 2]
            draw.polygon([frame.p(*a), frame.p(*b), frame.p(*c)], fill=(150, 170, 196))
            draw.polygon(
                [frame.p(*b), frame.p(b[0] - 5, b[1] + 8), frame.p(b[0] + 5, b[1] + 8)],
                fill=(244, 248, 252),
            )
        draw.rectangle((0, horizon - 1, width, horizon), fill=(150, 170, 196))
        ground((246, 249, 252), (220, 230, 240))
        for _ in range(30):
            x, y = rng.uniform(0, width), rng.uniform(0, bottom)
            r = 0.5 * frame.unit
            draw.ellipse((x - r, y - r, x + r, y + r), fill=_WHITE)
    elif theme == "city":
        x = -rng.uniform(0, 8) * frame.unit
        while x < width:
            w = rng.uniform(10, 18) * frame.unit
            roof = horizon - rng.uniform(22, 52) * frame.unit
            body = _shade(rng.choice(((154, 163, 173), (179, 186, 194), (136, 147, 160))), 0.9)
            body = _shade(body, 0.6) if night else body
            draw.rectangle((x, roof, x + w - 2, horizon), fill=body)
            lit: RGB = (255, 216, 107) if night else _mix(body, _WHITE, 0.55)
            wy = roof + 3 * frame.unit
            while wy < horizon - 4 * frame.unit:
                wx = x + 2 * frame.unit
                while wx < x + w - 4 * frame.unit:
                    draw.rectangle((wx, wy, wx + 1.6 * frame.unit, wy + 2.2 * frame.unit), lit)
                    wx += 3.6 * frame.unit
                wy += 4.6 * frame.unit
            x += w
        ground((185, 188, 194), (150, 154, 162))
        draw.line((0, horizon, width, horizon), fill=(120, 124, 132), width=frame.w(0.8))
    elif theme == "desert":
        ground((236, 184, 116), (212, 154, 88))
        _cactus(draw, frame, 12, (74, 140, 86))
    elif theme == "space":
        for _ in range(60):
            x, y = rng.uniform(0, width), rng.uniform(0, horizon)
            r = rng.choice((0.3, 0.5)) * frame.unit
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(240, 240, 255))
        draw.ellipse(frame.box(4, 8, 22, 26), fill=(214, 140, 90))
        draw.arc(frame.box(0, 14, 26, 20), 160, 380, fill=(240, 210, 160), width=frame.w(0.8))
        ground((150, 150, 164), (110, 110, 124))
    elif theme in ("park", "forest"):
        ground((124, 207, 107), (79, 158, 72))
        crown: RGB = (46, 125, 50) if theme == "forest" else (76, 160, 76)
        trees = (6, 20, 88, 100) if theme == "forest" else (10, 92)
        for tx in trees:
            _tree(draw, frame, tx + rng.uniform(-2, 2), _shade(crown, ground_factor), night)
        for _ in range(12):
            fx = rng.uniform(0, width)
            fy = rng.uniform(horizon + 3 * frame.unit, bottom - 2)
            r = 0.6 * frame.unit
            colour = rng.choice(((255, 255, 255), (255, 214, 102), (240, 128, 160)))
            draw.ellipse((fx - r, fy - r, fx + r, fy + r), fill=_shade(colour, ground_factor))
    else:
        # An unknown place still gets its own stable colours, so two scenes never look alike.
        hue = _hash_int("scene-colour", text) % 360
        ground(_hsl(hue, 0.45, 0.78), _hsl(hue, 0.35, 0.62))
    if rain:
        streak = _mix(sky[1], (90, 110, 140), 0.35)
        for _ in range(70):
            x, y = rng.uniform(0, width), rng.uniform(0, bottom)
            draw.line(
                (x, y, x - 0.8 * frame.unit, y + 3.2 * frame.unit), fill=streak, width=frame.w(0.3)
            )


def _hsl(hue: int, saturation: float, lightness: float) -> RGB:
    rgb = ImageColor.getrgb(f"hsl({hue}, {round(saturation * 100)}%, {round(lightness * 100)}%)")
    return (rgb[0], rgb[1], rgb[2])


def _gradient(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], top: RGB, low: RGB
) -> None:
    x0, y0, x1, y1 = box
    rows = max(1, y1 - y0)
    for i in range(rows):
        draw.line((x0, y0 + i, x1, y0 + i), fill=_mix(top, low, i / max(1, rows - 1)))


def _cloud(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, colour: RGB) -> None:
    for dx, dy, k in ((-1.2, 0.3, 0.8), (0.0, 0.0, 1.0), (1.2, 0.3, 0.8), (0.6, -0.5, 0.8)):
        rr = r * k
        draw.ellipse(
            (cx + dx * r - rr, cy + dy * r - rr, cx + dx * r + rr, cy + dy * r + rr), colour
        )


def _tree(draw: ImageDraw.ImageDraw, frame: _Frame, x: float, crown: RGB, night: bool) -> None:
    trunk = (92, 64, 40) if not night else (50, 36, 24)
    draw.rectangle(frame.box(x - 1.6, 50, x + 1.6, 74), fill=trunk)
    for dx, dy, r in ((0, 36, 11), (-7, 44, 8), (7, 44, 8), (0, 28, 8)):
        draw.ellipse(frame.box(x + dx - r, dy - r, x + dx + r, dy + r), fill=crown)
    draw.ellipse(frame.box(x - 5, 30, x + 1, 36), fill=_mix(crown, _WHITE, 0.15))


def _cactus(draw: ImageDraw.ImageDraw, frame: _Frame, x: float, colour: RGB) -> None:
    w = frame.w(4)
    draw.line([frame.p(x, 76), frame.p(x, 52)], fill=colour, width=w)
    draw.line([frame.p(x, 64), frame.p(x - 5, 64), frame.p(x - 5, 56)], fill=colour, width=w)
    draw.line([frame.p(x, 60), frame.p(x + 5, 60), frame.p(x + 5, 54)], fill=colour, width=w)


# --- the figure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limbs:
    """Joint positions (relative to the figure's centre line) for one pose."""

    left_arm: tuple[Point, Point, Point]
    right_arm: tuple[Point, Point, Point]
    left_leg: tuple[Point, Point, Point]
    right_leg: tuple[Point, Point, Point]


_STAND_LEGS = (((-5.0, 71.0), (-5.3, 81.0), (-5.6, 90.5)), ((5.0, 71.0), (5.3, 81.0), (5.6, 90.5)))
_ARM_DOWN_L: tuple[Point, Point, Point] = ((-11, 49), (-14.5, 59), (-15, 68))
_ARM_DOWN_R: tuple[Point, Point, Point] = ((11, 49), (14.5, 59), (15, 68))
_LIMBS: dict[Pose, _Limbs] = {
    "stand": _Limbs(_ARM_DOWN_L, _ARM_DOWN_R, *_STAND_LEGS),
    "arms_up": _Limbs(
        ((-11, 49), (-19, 40), (-21, 29)), ((11, 49), (19, 40), (21, 29)), *_STAND_LEGS
    ),
    "wave": _Limbs(_ARM_DOWN_L, ((11, 49), (20, 46), (22, 34)), *_STAND_LEGS),
    "guitar": _Limbs(
        ((-11, 49), (-16, 59), (-5, 63)), ((11, 49), (19, 57), (17, 51)), *_STAND_LEGS
    ),
    "laptop": _Limbs(
        ((-11, 49), (-17, 60), (-13.5, 66)), ((11, 49), (17, 60), (13.5, 66)), *_STAND_LEGS
    ),
    "selfie": _Limbs(
        ((-11, 49), (-19, 58), (-12, 66)), ((11, 49), (21, 44), (24, 33)), *_STAND_LEGS
    ),
    "run": _Limbs(
        ((-11, 49), (-17, 56), (-12, 62)),
        ((11, 49), (16, 58), (22, 54)),
        ((-4, 71), (-10, 79), (-17, 84)),
        ((4, 71), (11, 78), (10, 90.5)),
    ),
}


_TURNS: dict[str, float] = {"front": 0.0, "three-quarter": 45.0, "side": 90.0, "back": 180.0}
"""How far each view turns the character to its right, in degrees."""
_BODY_DEPTH = 0.55  # the torso's depth over its width: how narrow it looks in profile
_HAIR_LENGTHS: dict[str, float] = {
    "long": 46.0,
    "bob": 40.0,
    "twintails": 38.0,
    "short": 30.0,
    "spiky": 31.0,
}
_SPIKES: tuple[Point, ...] = (
    (-17, 22),
    (-15, 7),
    (-9, 13),
    (-4, 3),
    (1, 12),
    (7, 4),
    (10, 13),
    (17, 8),
    (17, 22),
)


def _arc(start: float, end: float, steps: int) -> list[Point]:
    """Points along the top of the hair's outline (an 18 by 15 ellipse round the skull)."""
    return [
        (18 * math.cos(a), 26 + 15 * math.sin(a))
        for a in (start + (end - start) * i / steps for i in range(steps + 1))
    ]


def _turned_cap(view: str, length: float) -> list[Point]:
    """The hair over the head of a turned view, as one outline: the face (towards the
    viewer's left) stays bare, the back of the head is all hair."""
    if view == "back":
        return [(-18.0, length), *_arc(math.pi, 2 * math.pi, 24), (18.0, length)]
    if view == "side":
        return [
            *_arc(math.pi + 0.55, 2 * math.pi, 20),
            (18.0, length),
            (7.0, length),
            (4.5, 27.0),
            (-3.0, 21.5),
            (-8.0, 23.0),
            (-13.0, 22.0),
        ]
    return [
        *_arc(math.pi + 0.3, 2 * math.pi, 22),
        (18.0, length),
        (13.5, length),
        (11.5, 27.0),
        (6.0, 22.0),
        (1.0, 25.5),
        (-4.0, 21.5),
        (-9.0, 25.5),
        (-13.5, 24.0),
    ]


class _Figure:
    """Draws the character. Fills are never anti-aliased, so sheet colours survive exactly."""

    def __init__(
        self,
        draw: ImageDraw.ImageDraw,
        frame: _Frame,
        look: CharacterLook,
        cx: float,
        view: str = "",
    ):
        self.d = draw
        self.f = frame
        self.look = look
        self.cx = cx
        self.ow = frame.w(0.45)
        self.view = view
        self.turn = math.radians(_TURNS.get(view, 0.0))
        # Horizontal squash and shift of what is drawn next: a turned body is seen edge-on, so
        # it narrows to its depth; the head stays round and is drawn turned instead.
        self.sx = 1.0
        self.dx = 0.0

    def x(self, value: float) -> float:
        return self.cx + value * self.sx + self.dx

    def at(self, point: Point) -> Point:
        return self.f.p(self.x(point[0]), point[1])

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return self.f.box(self.x(x0), y0, self.x(x1), y1)

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, fill: RGB, line: bool = True
    ) -> None:
        box = self.box(cx - rx, cy - ry, cx + rx, cy + ry)
        self.d.ellipse(box, fill=fill, outline=_outline_of(fill) if line else None, width=self.ow)

    def squashed(self) -> None:
        """Draw the body as the view sees it: narrowed to its depth when turned."""
        depth = _BODY_DEPTH
        self.sx = math.hypot(math.cos(self.turn), depth * math.sin(self.turn))
        self.dx = 0.0

    def turned(self, theta: float, width: float, depth: float) -> tuple[float, float]:
        """Where a point ``theta`` degrees round a body of that half-width and half-depth shows
        (x from the centre line) and how squarely it faces the viewer (below 0: hidden).

        Positive angles are the character's left, the viewer's right in the front view; views
        turn the character to its right, so its left side faces the viewer in profile.
        """
        angle = math.radians(theta)
        x = width * math.sin(angle) * math.cos(self.turn) - depth * math.cos(angle) * math.sin(
            self.turn
        )
        return x, math.cos(angle - self.turn)

    def polygon(self, points: Sequence[Point], fill: RGB, line: bool = True) -> None:
        self.d.polygon(
            [self.at(p) for p in points],
            fill=fill,
            outline=_outline_of(fill) if line else None,
            width=self.ow,
        )

    def limb(self, points: Sequence[Point], width: float, fill: RGB) -> None:
        """A thick rounded stroke with an outline: drawn twice, dark and wide first."""
        pixels = [self.at(p) for p in points]
        for colour, extra in ((_outline_of(fill), 2 * self.ow), (fill, 0)):
            w = self.f.w(width) + extra
            self.d.line(pixels, fill=colour, width=w, joint="curve")
            for x, y in (pixels[0], pixels[-1]):
                self.d.ellipse((x - w / 2, y - w / 2, x + w / 2, y + w / 2), fill=colour)

    def shadow(self, colour: RGB) -> None:
        self.ellipse(0, 95, 17, 2.4, colour, line=False)

    def speed_lines(self, colour: RGB) -> None:
        for y, x0 in ((54, -34), (64, -38), (74, -33)):
            self.d.line([self.at((x0, y)), self.at((x0 + 10, y))], fill=colour, width=self.f.w(0.8))

    def body(self, pose: Pose) -> None:
        look = self.look
        limbs = _LIMBS[pose]
        if self.view != "back":
            self.hair_behind()
        self.squashed()
        leg_colour = look.skin if look.skirt else look.bottom
        for leg in (limbs.left_leg, limbs.right_leg):
            self.limb(leg, 6.5, leg_colour)
            if look.stripes and not look.skirt:
                self.d.line(
                    [self.at(p) for p in leg], fill=_stripe(leg_colour), width=self.f.w(1.1)
                )
            foot = leg[2]
            outward = -1.5 if foot[0] < 0 else 1.5
            self.ellipse(foot[0] + outward, 92.6, 4.3, 2.4, look.shoes)
        self.d.rounded_rectangle(
            self.box(-12, 45.5, 12, 70),
            radius=self.f.w(6),
            fill=look.top,
            outline=_outline_of(look.top),
            width=self.ow,
        )
        if look.skirt:
            self.polygon([(-11, 64), (11, 64), (16, 81), (-16, 81)], look.bottom)
        else:
            self.d.rounded_rectangle(
                self.box(-11.5, 65.5, 11.5, 74),
                radius=self.f.w(3),
                fill=look.bottom,
                outline=_outline_of(look.bottom),
                width=self.ow,
            )
        if look.stripes:
            for x in (-9.0, 9.0):
                self.d.line(
                    [self.at((x, 48)), self.at((x, 65))],
                    fill=_stripe(look.top),
                    width=self.f.w(1.1),
                )
        self.d.rectangle(self.box(-3, 40, 3, 47), fill=look.skin)
        self.polygon([(-4.5, 45.6), (4.5, 45.6), (0, 50.5)], look.skin, line=False)

        if pose == "guitar":
            self.guitar()
        if pose == "laptop":
            self.laptop()
        for arm in (limbs.left_arm, limbs.right_arm):
            self.limb(arm, 5.5, look.top)
            if look.stripes:
                self.d.line([self.at(p) for p in arm], fill=_stripe(look.top), width=self.f.w(1.1))
        if pose == "selfie":
            self.d.rounded_rectangle(
                self.f.box(self.cx + 20.5, 21.5, self.cx + 27.5, 33.5),
                radius=self.f.w(1.2),
                fill=(43, 47, 58),
                outline=_LINE,
                width=self.ow,
            )
            self.ellipse(22.6, 23.8, 0.9, 0.9, (150, 160, 180), line=False)
        for arm in (limbs.left_arm, limbs.right_arm):
            self.ellipse(arm[2][0], arm[2][1], 3, 3, look.skin)
        if pose == "wave":
            hand = limbs.right_arm[2]
            box = self.f.box(self.cx + hand[0] - 7, hand[1] - 7, self.cx + hand[0] + 7, hand[1] + 7)
            for start, end in ((200, 240), (300, 340)):
                self.d.arc(box, start, end, fill=_LINE, width=self.f.w(0.7))
        self.sx = 1.0
        if self.view in ("three-quarter", "side", "back"):
            self.turned_head()
        else:
            self.head()
        if self.view == "back":
            self.hair_behind()  # seen from behind, long hair and tails hang over the back

    def hair_behind(self) -> None:
        """The hair behind the head, moved to the back of the head as the view turns."""
        if self.view in ("three-quarter", "side"):
            self.sx = math.hypot(math.cos(self.turn), 0.5 * math.sin(self.turn))
            self.dx = 7.0 * math.sin(self.turn)
        self.hair_back()
        self.sx, self.dx = 1.0, 0.0

    def hair_back(self) -> None:
        hair, style = self.look.hair, self.look.hair_style
        if style == "long":
            self.polygon(
                [
                    (-15, 16),
                    (15, 16),
                    (18, 26),
                    (20, 40),
                    (22.5, 56),
                    (18, 60),
                    (13, 56.5),
                    (8, 59.5),
                    (-8, 59.5),
                    (-13, 56.5),
                    (-18, 60),
                    (-22.5, 56),
                    (-20, 40),
                    (-18, 26),
                ],
                hair,
            )
        elif style == "bob":
            self.polygon(
                [
                    (-15, 16),
                    (15, 16),
                    (18, 26),
                    (20, 36),
                    (21, 42),
                    (15, 43.5),
                    (-15, 43.5),
                    (-21, 42),
                    (-20, 36),
                    (-18, 26),
                ],
                hair,
            )
        elif style == "ponytail":
            self.polygon([(14, 18), (24, 22), (27, 36), (23, 50), (19, 38), (15, 28)], hair)
            self.ellipse(16, 21, 2, 2, self.look.accent)
        elif style == "twintails":
            for side in (-1, 1):
                self.ellipse(side * 22, 36, 6, 13, hair)
                self.ellipse(side * 17.5, 22, 2, 2, self.look.accent)
        elif style == "bun":
            self.ellipse(0, 10.5, 7, 6.5, hair)

    def head(self) -> None:
        look = self.look
        for side in (-1, 1):
            self.ellipse(side * 15.8, 31, 2.6, 3.4, look.skin)
        self.ellipse(0, 28, 16, 15.5, look.skin)
        if look.hair_style == "bald":
            return
        # Cap, side locks and fringe are one polygon so the outline only traces the silhouette.
        length = _HAIR_LENGTHS.get(look.hair_style, 35.0)
        cap: list[Point] = [(-18.0, length)]
        for step in range(25):
            angle = math.pi + math.pi * step / 24
            cap.append((18 * math.cos(angle), 26 + 15 * math.sin(angle)))
        cap += [(18.0, length), (14.2, length - 2), (13.6, 26.5), (10, 22), (5, 25.5), (1, 21.5)]
        cap += [(-4, 26), (-8, 22), (-13.6, 26.5), (-14.2, length - 2)]
        if look.hair_style == "spiky":
            self.polygon(_SPIKES, look.hair)
        self.polygon(cap, look.hair)

    def turned_head(self) -> None:
        """The head of a three-quarter, side or back view: the hair covers the back of the
        head, the far ear hides behind it and, from behind, the face is gone."""
        look = self.look
        ears = [self.turned(side * 90.0, 15.8, 15.8) for side in (-1, 1)]
        if self.view == "back":
            for x, _ in ears:
                self.ellipse(x, 31, 2.6, 3.4, look.skin)
        self.ellipse(0, 28, 16, 15.5, look.skin)
        nose, _ = self.turned(0.0, 16, 16)
        if self.view == "side":
            tip = [(nose + 0.4, 31.5), (nose - 2.4, 36.2), (nose + 0.4, 37.2)]
            self.polygon(tip, look.skin, line=False)
            self.d.line([self.at(p) for p in tip], fill=_outline_of(look.skin), width=self.ow)
        if look.hair_style != "bald":
            if look.hair_style == "spiky":
                self.polygon(_SPIKES, look.hair)
            self.polygon(
                _turned_cap(self.view, _HAIR_LENGTHS.get(look.hair_style, 35.0)), look.hair
            )
        if self.view == "back":
            return
        for x, facing in ears:
            if facing > 0.2:
                self.ellipse(x, 31, 2.6 * facing, 3.4, look.skin)
                self.ellipse(x, 31, 1.1 * facing, 1.7, _shade(look.skin, 0.85), line=False)

    def turned_face(self) -> None:
        """A calm face seen from the side the view turns to: the near eye full, the far one
        narrowed or hidden, nose and mouth moved towards the silhouette."""
        look = self.look
        brow = _shade(look.hair, 0.7) if look.hair_style != "bald" else look.hair
        for side in (-1, 1):
            x, facing = self.turned(side * 24.0, 16, 16)
            if facing < 0.15:
                continue
            k = max(0.4, facing)
            self.ellipse(x, 33, 3.1 * k, 3.9, _LINE, line=False)
            self.ellipse(x, 33.3, 2.5 * k, 3.3, look.eyes, line=False)
            self.ellipse(x - 0.4 * k, 33.8, 1.0 * k, 1.4, (30, 24, 34), line=False)
            self.ellipse(x - 0.9 * k, 32.0, 0.8 * k, 0.8, _WHITE, line=False)
            ends = [self.turned(side * angle, 16, 16)[0] for angle in (12.0, 36.0)]
            self.d.line(
                [self.at((ends[0], 27.6)), self.at((ends[1], 27.3))],
                fill=brow,
                width=self.f.w(1.1),
            )
        nose, facing = self.turned(0.0, 16, 16)
        if self.view == "side":
            self.d.line(
                [self.at((nose + 1.2, 40.2)), self.at((nose + 3.4, 39.8))],
                fill=_MOUTH,
                width=self.f.w(0.8),
            )
            return
        self.ellipse(nose, 36.3, 0.6 * facing, 0.45, _shade(look.skin, 0.8), line=False)
        half = 2.8 * facing
        self.d.arc(
            self.box(nose - half, 36.5, nose + half, 40.1),
            30,
            150,
            fill=_MOUTH,
            width=self.f.w(0.8),
        )

    def face(self, expression: Expression) -> None:
        look = self.look
        brow = _shade(look.hair, 0.7) if look.hair_style != "bald" else look.hair
        eye_scale = 1.12 if expression == "surprised" else 1.0
        for side in (-1, 1):
            x = side * 6.5
            self.ellipse(x, 33, 3.1 * eye_scale, 3.9 * eye_scale, _LINE, line=False)
            self.ellipse(x, 33.3, 2.5 * eye_scale, 3.3 * eye_scale, look.eyes, line=False)
            self.ellipse(x, 33.8, 1.0 * eye_scale, 1.4 * eye_scale, (30, 24, 34), line=False)
            self.ellipse(x - 0.9, 32.0, 0.8, 0.8, _WHITE, line=False)
            if expression == "angry":
                # A heavy lid cut across the top keeps the iris visible while reading as a glare.
                self.polygon(
                    [
                        (x - 4 * side, 28.5),
                        (x + 4 * side, 28.5),
                        (x + 4 * side, 31.5),
                        (x - 4 * side, 29),
                    ],
                    look.skin,
                    line=False,
                )
            inner, outer = {
                "sad": (26.2, 28.4),
                "crying": (26.0, 28.4),
                "angry": (29.6, 26.4),
                "surprised": (25.4, 25.4),
            }.get(expression, (27.6, 27.3))
            self.d.line(
                [self.at((side * 3.3, inner)), self.at((side * 9.3, outer))],
                fill=brow,
                width=self.f.w(1.1),
            )
        self.ellipse(0, 36.3, 0.6, 0.45, _shade(look.skin, 0.8), line=False)
        if expression in ("smile", "crying"):
            for side in (-1, 1):
                self.ellipse(side * 10.5, 37.2, 2.6, 1.3, _mix(look.skin, _BLUSH, 0.55), line=False)
        self.mouth(expression)
        if expression == "crying":
            for side in (-1, 1):
                self.d.line(
                    [
                        self.at((side * 6.0, 37.0)),
                        self.at((side * 7.0, 40.5)),
                        self.at((side * 8.2, 43)),
                    ],
                    fill=_TEAR,
                    width=self.f.w(1.3),
                    joint="curve",
                )
                for tx, ty in ((side * 20, 37.0), (side * 22.5, 44.0)):
                    self.tear(tx, ty)
        if expression == "angry":
            vx, vy = 11.5, 17.5
            for a, b in (((-1.8, -0.5), (1.8, -0.5)), ((-1.8, 1.0), (1.8, 1.0))):
                self.d.line(
                    [self.at((vx + a[0], vy + a[1])), self.at((vx + b[0], vy + b[1]))],
                    fill=(214, 40, 57),
                    width=self.f.w(0.7),
                )
        if expression == "surprised":
            for a, b in (((19, 14), (23, 10)), ((21, 19), (26, 18)), ((16, 10), (18, 5))):
                self.d.line([self.at(a), self.at(b)], fill=_LINE, width=self.f.w(0.7))

    def keep(self, item: Keep) -> None:
        """Draw one must_keep item where it belongs on the figure, turned with the view."""
        look = self.look
        colour = item.colour or _shade(look.skin, 0.72)
        kind = item.kind
        if kind == "freckles":
            if self.view == "back":
                return
            for side in (-1, 1):
                for fx, fy in ((2.2, 35.8), (3.6, 37.2), (5.0, 37.9)):
                    x, facing = self.turned(side * math.degrees(math.asin(fx / 16)), 16, 16)
                    if facing > 0.3:
                        self.ellipse(x, fy, 0.45, 0.45, colour, line=False)
        elif kind == "glasses":
            self.glasses(colour)
        elif kind == "earrings":
            for side in (-1, 1):
                x, facing = self.turned(side * 90.0, 15.8, 15.8)
                if facing > -0.01:
                    self.ellipse(x, 35.6, 1.2, 1.2, colour)
        elif kind == "hair_clip":
            x, facing = self.turned(item.side * 58.0, 17, 17)
            if facing > 0.1:
                self.trinket(x, 19.5, 2.6, max(0.4, facing), colour, item.star, tilt=item.side)
        elif kind == "bow":
            x, facing = self.turned(item.side * 38.0, 16, 16)
            self.bow(x, 12.5, 4.2 * max(0.5, abs(facing)), colour)
        elif kind == "bow_tie":
            x, facing = self.turned(0.0, 4, 4)
            if facing > 0.15:
                self.bow(x, 46.6, 3.2 * facing, colour)
        elif kind == "hat":
            dome = [
                (18.5 * math.cos(a), 20 + 10.5 * math.sin(a))
                for a in (math.pi + math.pi * i / 24 for i in range(25))
            ]
            self.polygon(dome, colour)
            self.ellipse(0, 20, 22, 2.4, colour)
        elif kind == "scarf":
            self.d.rounded_rectangle(
                self.box(-7, 43.2, 7, 47.8),
                radius=self.f.w(1.5),
                fill=colour,
                outline=_outline_of(colour),
                width=self.ow,
            )
            x, facing = self.turned(item.side * 20.0, 12, 12 * _BODY_DEPTH)
            if facing > 0.1:
                w = 1.8 * facing
                self.polygon([(x - w, 46.5), (x + w, 46.5), (x + w + 0.6, 56), (x - w, 56)], colour)
        else:
            x, facing = self.turned(item.side * 30.0, 12, 12 * _BODY_DEPTH)
            if facing > 0.15:
                self.trinket(x, 53.0, 2.4, facing, colour, item.star, tilt=0)

    def trinket(
        self, x: float, y: float, r: float, k: float, colour: RGB, star: bool, tilt: int
    ) -> None:
        """A star, or else a clip's bar (tilted) or a badge's disc, ``k`` wide for the turn."""
        if star:
            points = [
                (
                    x + (r if i % 2 == 0 else r * 0.45) * k * math.sin(math.pi * i / 5),
                    y - (r if i % 2 == 0 else r * 0.45) * math.cos(math.pi * i / 5),
                )
                for i in range(10)
            ]
            self.polygon(points, colour)
        elif tilt:
            dx, dy = 2.4 * k, 1.2 * tilt
            w = 0.9
            self.polygon(
                [
                    (x - dx, y + dy - w),
                    (x + dx, y - dy - w),
                    (x + dx, y - dy + w),
                    (x - dx, y + dy + w),
                ],
                colour,
            )
        else:
            self.ellipse(x, y, r * k, r, colour)

    def bow(self, x: float, y: float, half: float, colour: RGB) -> None:
        """Two loops and a knot."""
        for side in (-1, 1):
            self.polygon(
                [(x, y), (x + side * half, y - half * 0.6), (x + side * half, y + half * 0.6)],
                colour,
            )
        self.ellipse(x, y, half * 0.3, half * 0.3, colour)

    def glasses(self, colour: RGB) -> None:
        """Rims round the visible eyes, a bridge between two, an arm to the ear in profile."""
        if self.view == "back":
            return
        rims: list[tuple[float, float]] = []
        for side in (-1, 1):
            x, facing = self.turned(side * 24.0, 16, 16)
            if facing < 0.15:
                continue
            rx = 4.4 * max(0.4, facing)
            self.d.ellipse(
                self.box(x - rx, 28.8, x + rx, 37.2), outline=colour, width=self.f.w(0.7)
            )
            rims.append((x - rx, x + rx))
        if len(rims) == 2:
            self.d.line(
                [self.at((rims[0][1], 32.0)), self.at((rims[1][0], 32.0))],
                fill=colour,
                width=self.f.w(0.7),
            )
        elif rims:
            ear, _ = self.turned(90.0, 15.8, 15.8)
            self.d.line(
                [self.at((rims[0][1], 32.0)), self.at((ear, 31.0))],
                fill=colour,
                width=self.f.w(0.7),
            )

    def tear(self, x: float, y: float) -> None:
        self.polygon([(x, y - 3.2), (x + 1.6, y), (x - 1.6, y)], _TEAR, line=False)
        self.ellipse(x, y + 0.2, 1.6, 1.6, _TEAR, line=False)

    def mouth(self, expression: Expression) -> None:
        cx, y = self.cx, 39.5
        width = self.f.w(0.8)
        if expression == "smile":
            box = self.f.box(cx - 4, y - 3.2, cx + 4, y + 2.6)
            self.d.pieslice(box, 0, 180, fill=_MOUTH, outline=_LINE, width=self.ow)
            self.d.chord(self.f.box(cx - 2.2, y + 0.4, cx + 2.2, y + 2.4), 180, 360, fill=_TONGUE)
        elif expression == "crying":
            self.d.chord(
                self.f.box(cx - 3.5, y - 1, cx + 3.5, y + 4),
                180,
                360,
                fill=_MOUTH,
                outline=_LINE,
                width=self.ow,
            )
        elif expression == "sad":
            self.d.arc(
                self.f.box(cx - 3.5, y - 0.5, cx + 3.5, y + 4), 200, 340, fill=_MOUTH, width=width
            )
        elif expression == "angry":
            self.d.arc(
                self.f.box(cx - 3.5, y - 0.5, cx + 3.5, y + 3),
                195,
                345,
                fill=_MOUTH,
                width=self.f.w(1.1),
            )
        elif expression == "surprised":
            self.d.ellipse(
                self.f.box(cx - 2, y - 2.2, cx + 2, y + 2.2),
                fill=_MOUTH,
                outline=_LINE,
                width=self.ow,
            )
        else:
            self.d.arc(
                self.f.box(cx - 2.8, y - 3, cx + 2.8, y + 0.6), 30, 150, fill=_MOUTH, width=width
            )

    def guitar(self) -> None:
        body_colour = self.look.accent if self.look.accent != self.look.top else (201, 123, 58)
        base = (-5.0, 66.0)
        head = (23.0, 46.0)
        length = math.dist(base, head)
        ux, uy = (head[0] - base[0]) / length, (head[1] - base[1]) / length
        self.limb([(base[0] + ux * 6, base[1] + uy * 6), head], 2.2, (107, 68, 35))
        self.ellipse(head[0], head[1], 2.4, 2.4, (80, 50, 28))
        self.ellipse(base[0] - ux * 2.5, base[1] - uy * 2.5, 7.5, 7.5, body_colour)
        self.ellipse(base[0] + ux * 4, base[1] + uy * 4, 5.6, 5.6, body_colour)
        self.d.line(
            [
                self.at((base[0] - ux * 5, base[1] - uy * 5)),
                self.at((base[0] + ux * 4, base[1] + uy * 4)),
            ],
            fill=body_colour,
            width=self.f.w(6),
        )
        self.ellipse(base[0] + ux * 1.5, base[1] + uy * 1.5, 2.1, 2.1, (59, 36, 18), line=False)
        self.d.line([self.at(base), self.at(head)], fill=(235, 225, 205), width=1)

    def laptop(self) -> None:
        self.d.rounded_rectangle(
            self.f.box(self.cx - 13, 54, self.cx + 13, 70.5),
            radius=self.f.w(1.5),
            fill=(201, 206, 214),
            outline=(120, 128, 140),
            width=self.ow,
        )
        self.d.rectangle(self.f.box(self.cx - 15, 70.5, self.cx + 15, 73), fill=(150, 158, 170))
        self.ellipse(0, 62, 2, 2, self.look.accent, line=False)


def _stripe(under: RGB) -> RGB:
    """White stripes, unless the garment is so light that white would vanish."""
    return _WHITE if sum(under) < 600 else (40, 40, 48)


class _Pet:
    """A small companion that faces the character, so a selfie with a dog reads as a pair."""

    def __init__(
        self,
        draw: ImageDraw.ImageDraw,
        frame: _Frame,
        colour: RGB,
        collar: RGB,
        eyes: RGB = _PET_EYES,
    ):
        self.d = draw
        self.f = frame
        self.colour = colour
        self.collar = collar
        self.eyes = eyes
        self.ow = frame.w(0.4)

    def ellipse(
        self, cx: float, cy: float, rx: float, ry: float, fill: RGB, line: bool = True
    ) -> None:
        self.d.ellipse(
            self.f.box(cx - rx, cy - ry, cx + rx, cy + ry),
            fill=fill,
            outline=_outline_of(fill) if line else None,
            width=self.ow,
        )

    def draw(self, kind: Pet, x: float, shadow: RGB) -> None:
        colour = self.colour
        self.ellipse(x - 2, 95, 13, 1.8, shadow, line=False)
        dark = _shade(colour, 0.7)
        tail = (
            [(x + 9, 83), (x + 13, 77), (x + 12, 72)]
            if kind == "dog"
            else [(x + 9, 84), (x + 15, 76), (x + 13, 66)]
        )
        self.d.line(
            [self.f.p(*p) for p in tail],
            fill=_outline_of(colour),
            width=self.f.w(2.4) + 2 * self.ow,
            joint="curve",
        )
        self.d.line([self.f.p(*p) for p in tail], fill=colour, width=self.f.w(2.4), joint="curve")
        for lx in (-7.0, -3.5, 3.5, 7.0):
            self.d.rounded_rectangle(
                self.f.box(x + lx - 1.4, 85, x + lx + 1.4, 94.6),
                radius=self.f.w(1),
                fill=colour,
                outline=_outline_of(colour),
                width=self.ow,
            )
        self.ellipse(x, 83.5, 11, 5.8, colour)
        hx, hy = x - 10, 75
        if kind == "cat":
            for ex in (-4.0, 3.0):
                self.d.polygon(
                    [
                        self.f.p(hx + ex - 2, hy - 3),
                        self.f.p(hx + ex + 0.5, hy - 9),
                        self.f.p(hx + ex + 3, hy - 3),
                    ],
                    fill=colour,
                    outline=_outline_of(colour),
                    width=self.ow,
                )
        self.ellipse(hx, hy, 6, 5.6, colour)
        if kind == "dog":
            self.ellipse(hx - 6, hy + 2.2, 3.6, 2.6, _mix(colour, _WHITE, 0.35))
            self.ellipse(hx - 9, hy + 1.2, 1.1, 0.9, (30, 24, 28), line=False)
            self.ellipse(hx + 2.5, hy + 1, 2.2, 4.8, dark)
        else:
            self.ellipse(hx - 3.5, hy + 1.8, 0.8, 0.6, (230, 120, 140), line=False)
        self.ellipse(hx - 2.8, hy - 1.2, 0.9, 1.1, self.eyes, line=False)
        self.d.line(
            [self.f.p(hx - 1, hy + 4.5), self.f.p(hx + 4.5, hy + 4.8)],
            fill=self.collar,
            width=self.f.w(1.3),
        )


# --- caption and badge -------------------------------------------------------------------------


def _font(size: int) -> Font:
    """Pillow's bundled font: identical on every machine, unlike anything found on the system."""
    return ImageFont.load_default(size=size)


_TRANSLITERATE = str.maketrans(
    {"×": "x", "—": "-", "–": "-", "ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "đ": "d"}
)


def _drawable(text: str, font: Font) -> str:
    """Fold text into what the bundled font can draw.

    Pillow's default font covers ASCII and a little punctuation only, so accents are stripped
    ("café" -> "cafe") rather than shown as empty boxes; scripts it cannot draw at all stay as
    they are. The bitmap fallback (Pillow without FreeType) cannot even encode beyond Latin-1.
    """
    folded = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    if isinstance(font, ImageFont.FreeTypeFont):
        return folded
    return folded.encode("latin-1", "replace").decode("latin-1")


class _Measure(Protocol):
    """What wrapping needs of a font: the advance width of a string."""

    def getlength(self, text: str) -> float: ...


def _wrap(text: str, font: _Measure, width: float, max_lines: int) -> list[str]:
    """Greedy word wrap that also breaks words longer than a line and ellipsises the overflow.

    The work is bounded by what is drawn, not by the text: wrapping stops once a line past
    ``max_lines`` exists (the overflow that earns the ellipsis), and a word longer than a line
    is cut at the longest prefix that fits, found by doubling then bisecting, so each cut
    measures only about a line's worth of text. Measuring every prefix one character shorter
    took minutes for a single 2,000-character word.
    """
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while len(lines) <= max_lines and len(current) > 1:
            fits = _longest_fitting_prefix(current, font, width)
            if fits == len(current):
                break
            cut = max(1, fits)  # a line holds at least one character, even one too wide
            lines.append(current[:cut])
            current = current[cut:]
        if len(lines) > max_lines:
            break
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return lines or [""]


def _longest_fitting_prefix(word: str, font: _Measure, width: float) -> int:
    """How many leading characters of ``word`` fit in ``width`` (0 when not even one does).

    A longer prefix is never narrower, so the answer is found by doubling the prefix until it
    overflows and bisecting the last step: O(log n) measurements of at most twice the answer.
    """
    fits, step = 0, 1
    while fits < len(word):
        probe = min(len(word), fits + step)
        if font.getlength(word[:probe]) > width:
            break
        fits, step = probe, step * 2
    else:
        return fits
    low, high = fits, min(len(word), fits + step)  # word[:low] fits, word[:high] does not
    while high - low > 1:
        middle = (low + high) // 2
        if font.getlength(word[:middle]) <= width:
            low = middle
        else:
            high = middle
    return low


def _caption(
    draw: ImageDraw.ImageDraw, width: int, height: int, name: str, tag: str, label: str
) -> int:
    """Draw the caption strip at the bottom and return where it starts."""
    base = min(width, height)
    name_font = _font(max(9, min(22, round(base * 0.038))))
    label_font = _font(max(8, min(18, round(base * 0.031))))
    pad = max(4, round(base * 0.02))
    name = _drawable(name, name_font)
    label = _drawable(label, label_font)
    tag = _drawable(tag, label_font)
    tag_width = label_font.getlength(tag)
    name_line = _wrap(name, name_font, width - 3 * pad - tag_width, 1)[0]
    max_lines = 3 if height >= 256 else 2
    lines = _wrap(label, label_font, width - 2 * pad, max_lines)
    name_height = _line_height(name_font)
    line_height = _line_height(label_font)
    strip = pad + name_height + round(pad * 0.4) + line_height * len(lines) + pad
    top = height - strip
    draw.rectangle((0, top, width, height), fill=(33, 37, 48))
    draw.rectangle((0, top, width, top + max(1, base // 170)), fill=(240, 180, 80))
    y = top + pad
    draw.text((pad, y), name_line, font=name_font, fill=(250, 248, 242))
    draw.text((width - pad - tag_width, y + 2), tag, font=label_font, fill=(240, 180, 80))
    y += name_height + round(pad * 0.4)
    for line in lines:
        draw.text((pad, y), line, font=label_font, fill=(200, 206, 218))
        y += line_height
    return top


def _line_height(font: Font) -> int:
    box = font.getbbox("Ág")
    return int(box[3]) + 2


def _badge(draw: ImageDraw.ImageDraw, width: int, text: str) -> None:
    """A small marker that the shot was made with references, without pretending to use them."""
    font = _font(max(8, min(14, width // 40)))
    text = _drawable(text, font)
    pad = 4
    text_width = font.getlength(text)
    height = _line_height(font)
    box = (width - text_width - 3 * pad, pad, width - pad, pad + height + pad)
    draw.rounded_rectangle(box, radius=4, fill=(33, 37, 48))
    draw.text((box[0] + pad, box[1] + pad / 2), text, font=font, fill=(250, 248, 242))
