"""The preview provider is what every other test runs on, so its promises are pinned here.

The important ones: identical requests give identical bytes (the blob store and snapshot tests
rely on it), the character's hair and eye colours survive every shot exactly (that is what "on
model" means), and a shot's request is visible in the pixels (otherwise a wrong composition
would go unnoticed in the demo and in tests).
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageFont

from onmodel.providers.base import GenerationRequest, InputImage, Provider
from onmodel.providers.preview import (
    PreviewProvider,
    _font,
    _wrap,
    character_look,
    colours_in,
    detect_expression,
    detect_pet,
    detect_pose,
    parse_colour,
    preview_size,
)
from onmodel.sheet import COLOUR_WORDS, ModelSheet, ShotRequest

HAIR = "#8b4513"
EYES = "#1e90ff"
TOP = "#3366cc"
SHEET = ModelSheet(
    hair="long hair",
    hair_color=HAIR,
    eye_color=EYES,
    skin_color="#ffe0c8",
    outfit="hoodie and jeans",
    outfit_colors=[TOP, "#333344"],
)
PLAIN = (246, 244, 239)


def make_request(
    shot: ShotRequest | None = None,
    *,
    kind: str = "shot",
    sheet: ModelSheet = SHEET,
    name: str = "Mira",
    params: dict[str, object] | None = None,
    inputs: tuple[InputImage, ...] = (),
) -> GenerationRequest:
    return GenerationRequest(
        kind="anchor" if kind == "anchor" else "shot",
        prompt="a girl",
        model="preview",
        params=dict(params or {}),
        inputs=inputs,
        sheet=sheet,
        request=shot or ShotRequest(),
        character_name=name,
    )


def generate(request: GenerationRequest) -> Image.Image:
    result = PreviewProvider().generate(request)
    image = Image.open(io.BytesIO(result.data))
    image.load()
    return image


def colours(image: Image.Image) -> dict[tuple[int, int, int], int]:
    counted = image.convert("RGB").getcolors(maxcolors=image.width * image.height)
    assert counted is not None
    return {as_rgb(c): n for n, c in counted}


def as_rgb(value: object) -> tuple[int, int, int]:
    assert isinstance(value, tuple) and len(value) == 3
    return (int(value[0]), int(value[1]), int(value[2]))


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    return as_rgb(image.getpixel(xy))


def rgb(value: str) -> tuple[int, int, int]:
    parsed = parse_colour(value)
    assert parsed is not None
    return parsed


ANCHOR_INPUT = (
    InputImage(
        role="anchor",
        path=Path("/nonexistent/anchor.png"),  # never read: the preview draws from the sheet
        sha256="0" * 64,
        mime="image/png",
    ),
)

SHOTS = [
    ShotRequest(),
    ShotRequest(expression="crying"),
    ShotRequest(expression="smiling", pose="playing guitar"),
    ShotRequest(pose="taking a selfie", action="with a dog", scene="park"),
    ShotRequest(action="using a computer", expression="surprised", scene="office"),
    ShotRequest(pose="running", outfit="sportswear", scene="city street at night"),
    ShotRequest(pose="waving", expression="angry", scene="beach at sunset"),
    ShotRequest(pose="arms up", expression="sad", scene="snowy mountain", text="with a cat"),
    ShotRequest(scene="a lighthouse in the fog"),
]


def test_is_a_provider() -> None:
    provider: Provider = PreviewProvider()
    assert provider.name == "preview"


def test_same_request_gives_identical_bytes() -> None:
    request = make_request(ShotRequest(pose="selfie", action="dog", scene="park"))
    first = PreviewProvider().generate(request)
    second = PreviewProvider().generate(request)
    assert first.data == second.data


def test_result_is_a_bare_png() -> None:
    result = PreviewProvider().generate(make_request(kind="anchor"))
    assert result.format == "png"
    assert result.data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(result.data))
    assert image.format == "PNG"
    assert image.mode == "RGB"
    assert image.size == (512, 512)
    assert result.returned == {"size": "512x512", "output_format": "png"}
    assert result.revised_prompt is None
    assert result.usage is None
    # No text or time chunks: metadata belongs in the database, and it would break determinism.
    chunks, offset = [], 8
    while offset < len(result.data):
        (length,) = struct.unpack(">I", result.data[offset : offset + 4])
        chunks.append(result.data[offset + 4 : offset + 8])
        offset += 12 + length
    assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}


@pytest.mark.parametrize("shot", SHOTS, ids=lambda s: s.label())
def test_hair_and_eye_colours_survive_every_shot(shot: ShotRequest) -> None:
    found = colours(generate(make_request(shot, inputs=ANCHOR_INPUT)))
    assert rgb(HAIR) in found
    assert rgb(EYES) in found


def test_anchor_has_the_hair_and_eye_colours() -> None:
    found = colours(generate(make_request(kind="anchor")))
    assert found.get(rgb(HAIR), 0) > 500
    assert found.get(rgb(EYES), 0) > 50


def test_empty_sheet_falls_back_to_the_same_colours_in_every_shot() -> None:
    sheet = ModelSheet()
    look = character_look(sheet, "Zed")
    assert look == character_look(sheet, " zed ")
    for shot in SHOTS:
        found = colours(generate(make_request(shot, sheet=sheet, name="Zed")))
        assert look.hair in found
        assert look.eyes in found
        assert look.skin in found


def test_different_names_get_different_fallback_looks() -> None:
    looks = {character_look(ModelSheet(), name) for name in ("Ann", "Bo", "Cy", "Dee", "Eve")}
    assert len(looks) > 1


def test_colour_words_map_before_css() -> None:
    sheet = ModelSheet(hair_color="blonde", eye_color="hazel")
    assert parse_colour("blonde") == rgb(COLOUR_WORDS["blonde"])
    assert parse_colour("red") == rgb(COLOUR_WORDS["red"])  # not CSS red (255, 0, 0)
    found = colours(generate(make_request(ShotRequest(expression="crying"), sheet=sheet)))
    assert rgb(COLOUR_WORDS["blonde"]) in found
    assert rgb(COLOUR_WORDS["hazel"]) in found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#8b4513", (139, 69, 19)),
        ("#ABC", (170, 187, 204)),
        ("teal", (0, 128, 128)),
        ("cornflowerblue", (100, 149, 237)),
        ("light blue", (173, 216, 230)),
        ("long red hair", (210, 43, 43)),
        ("hair", None),
        ("", None),
    ],
)
def test_parse_colour(text: str, expected: tuple[int, int, int] | None) -> None:
    assert parse_colour(text) == expected


def test_colours_in_keeps_order_and_two_word_names() -> None:
    assert colours_in("red and white tracksuit") == [rgb("red"), rgb("white")]
    assert colours_in("light blue dress, dark-green belt") == [(173, 216, 230), (0, 100, 0)]
    assert colours_in("sportswear") == []


def test_crying_and_smiling_look_different() -> None:
    crying = generate(make_request(ShotRequest(expression="crying")))
    smiling = generate(make_request(ShotRequest(expression="smiling")))
    diff = ImageChops.difference(crying, smiling).convert("L").point(lambda v: 255 if v else 0)
    changed = colours(diff.convert("RGB")).get((255, 255, 255), 0)
    assert changed > 300


@pytest.mark.parametrize(
    "shot",
    [
        ShotRequest(expression="angry"),
        ShotRequest(expression="surprised"),
        ShotRequest(expression="sad"),
        ShotRequest(pose="arms up"),
        ShotRequest(pose="waving"),
        ShotRequest(action="playing guitar"),
        ShotRequest(action="working on a laptop"),
        ShotRequest(pose="selfie"),
        ShotRequest(action="running"),
        ShotRequest(text="with a dog"),
    ],
    ids=lambda s: s.label(),
)
def test_each_request_changes_the_picture(shot: ShotRequest) -> None:
    neutral = generate(make_request(ShotRequest(text="standing")))
    changed = generate(make_request(shot))
    assert ImageChops.difference(neutral.convert("RGB"), changed.convert("RGB")).getbbox()


def test_scenes_paint_different_backgrounds() -> None:
    park = generate(make_request(ShotRequest(scene="park")))
    beach = generate(make_request(ShotRequest(scene="beach")))
    night = generate(make_request(ShotRequest(scene="city at night")))
    ground = (5, 400)  # left of the figure, above the caption
    r, g, b = pixel(park, ground)
    assert g > r and g > b  # grass
    r, g, b = pixel(beach, ground)
    assert r > g > b  # sand
    assert pixel(park, ground) != pixel(beach, ground)
    assert sum(pixel(night, (5, 5))) < 200
    assert pixel(park, (5, 5)) != PLAIN


def test_anchor_background_is_plain_whatever_the_scene() -> None:
    anchor = generate(make_request(ShotRequest(scene="busy market"), kind="anchor"))
    for corner in ((2, 2), (509, 40), (5, 400)):
        assert pixel(anchor, corner) == PLAIN


@pytest.mark.parametrize("scene", ["rainy street", "snowy mountain", "park", "city at night"])
def test_scene_never_bleeds_into_caption(scene: str) -> None:
    image = generate(make_request(ShotRequest(scene=scene, text="with a dog")))
    rows = [y for y in range(image.height) if pixel(image, (0, y)) == (240, 180, 80)]
    assert rows, "caption accent line not found"
    top = rows[0]
    accent = image.crop((0, top, image.width, top + 1))
    assert colours(accent) == {(240, 180, 80): image.width}
    strip = colours(image.crop((0, top + len(rows), image.width, image.height)))
    assert max(strip, key=lambda c: strip[c]) == (33, 37, 48)


def test_outfit_override_changes_clothes_but_not_hair() -> None:
    default = colours(generate(make_request(ShotRequest(pose="standing"))))
    tracksuit = colours(
        generate(make_request(ShotRequest(pose="standing", outfit="red tracksuit")))
    )
    assert rgb(TOP) in default
    assert rgb(TOP) not in tracksuit
    assert rgb("red") in tracksuit
    assert tracksuit[rgb(HAIR)] == default[rgb(HAIR)]
    assert tracksuit[rgb(EYES)] == default[rgb(EYES)]


def test_outfit_without_colour_gets_a_stable_hashed_one_with_stripes() -> None:
    look = character_look(SHEET, "Mira", "sportswear")
    assert look.top != rgb(TOP)
    assert look.stripes
    assert look == character_look(SHEET, "Mira", "sportswear")
    found = colours(generate(make_request(ShotRequest(outfit="sportswear"))))
    assert look.top in found
    assert rgb(TOP) not in found


@pytest.mark.parametrize(
    ("params", "size", "honoured"),
    [
        ({}, (512, 512), {}),
        ({"size": "auto"}, (512, 512), {}),
        ({"size": "1024x1024"}, (512, 512), {"size": "1024x1024"}),
        ({"size": "1024x1536"}, (341, 512), {"size": "1024x1536"}),
        ({"size": "1536x1024"}, (512, 341), {"size": "1536x1024"}),
        ({"size": "256x256"}, (256, 256), {"size": "256x256"}),
        ({"size": "32x32"}, (128, 128), {"size": "32x32"}),
        ({"size": "0x100"}, (512, 512), {}),
    ],
)
def test_size_is_honoured_and_clamped(
    params: dict[str, object], size: tuple[int, int], honoured: dict[str, object]
) -> None:
    assert preview_size(params) == (size, honoured)
    result = PreviewProvider().generate(make_request(ShotRequest(text="hi"), params=params))
    assert Image.open(io.BytesIO(result.data)).size == size
    assert result.returned["size"] == f"{size[0]}x{size[1]}"
    assert result.sent_params == honoured


@pytest.mark.parametrize("size", ["128x128", "1536x1024", "1024x1536", "512x128"])
@pytest.mark.parametrize("shot", SHOTS, ids=lambda s: s.label())
def test_every_shot_renders_at_every_size(shot: ShotRequest, size: str) -> None:
    image = generate(make_request(shot, params={"size": size}))
    found = colours(image)
    assert rgb(HAIR) in found
    assert rgb(EYES) in found


def test_reference_marker_does_not_read_the_anchor() -> None:
    shot = ShotRequest(expression="crying")
    plain = generate(make_request(shot))
    referenced = generate(make_request(shot, inputs=ANCHOR_INPUT))
    box = ImageChops.difference(plain, referenced).getbbox()
    assert box is not None
    assert box[1] < 40 and box[0] > 400  # only the small badge in the top-right corner


def test_long_and_non_latin_captions_render() -> None:
    long_text = "a very long free text description " * 20 + "supercalifragilistic" * 5
    for text in (long_text, "café au lait — ×2", "在公园里和狗自拍"):
        image = generate(make_request(ShotRequest(text=text), params={"size": "1024x1536"}))
        assert image.size == (341, 512)


@pytest.mark.parametrize(
    ("shot", "expression"),
    [
        (ShotRequest(expression="crying"), "crying"),
        (ShotRequest(expression="in tears"), "crying"),
        (ShotRequest(expression="big smile"), "smile"),
        (ShotRequest(text="she is furious"), "angry"),
        (ShotRequest(expression="shocked"), "surprised"),
        (ShotRequest(expression="sad"), "sad"),
        (ShotRequest(expression="pensive"), "neutral"),
        (ShotRequest(expression="happy", text="crying"), "smile"),
        (ShotRequest(), "neutral"),
    ],
)
def test_detect_expression(shot: ShotRequest, expression: str) -> None:
    assert detect_expression(shot) == expression


@pytest.mark.parametrize(
    ("shot", "pose"),
    [
        (ShotRequest(pose="playing guitar"), "guitar"),
        (ShotRequest(action="using a computer"), "laptop"),
        (ShotRequest(text="typing on a laptop"), "laptop"),
        (ShotRequest(pose="taking a selfie"), "selfie"),
        (ShotRequest(action="running"), "run"),
        (ShotRequest(text="doing sport"), "run"),
        (ShotRequest(outfit="sportswear"), "stand"),  # clothes alone do not make her run
        (ShotRequest(pose="waving hello"), "wave"),
        (ShotRequest(pose="arms up"), "arms_up"),
        (ShotRequest(pose="standing"), "stand"),
    ],
)
def test_detect_pose(shot: ShotRequest, pose: str) -> None:
    assert detect_pose(shot) == pose


def test_detect_pet() -> None:
    assert detect_pet(ShotRequest(text="selfie with a dog")) == "dog"
    assert detect_pet(ShotRequest(scene="with a kitten")) == "cat"
    assert detect_pet(ShotRequest(text="eating a hotdog")) is None


def test_a_typical_render_does_bounded_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview draws every image the tests and the demo make, so it must stay cheap.

    How long it takes is for ``benchmarks/preview_render.py`` to show (a time limit here fails
    on a busy machine); checked here is the work: a canvas of at most 512×512 pixels, and a
    caption measured a few times, not once per character.
    """
    measured: list[str] = []
    getlength = ImageFont.FreeTypeFont.getlength

    def counting(font: ImageFont.FreeTypeFont, text: str, *args: Any, **kwargs: Any) -> float:
        measured.append(text)
        return float(getlength(font, text, *args, **kwargs))

    monkeypatch.setattr(ImageFont.FreeTypeFont, "getlength", counting)
    request = make_request(ShotRequest(pose="selfie", action="dog", scene="city at night"))
    image = Image.open(io.BytesIO(PreviewProvider().generate(request).data))
    assert image.width * image.height <= 512 * 512
    assert 0 < len(measured) <= 20


# ---------------------------------------------------------------------------------- wrapping


class CountingFont:
    """A font that counts what wrapping asks of it: calls, and characters measured."""

    def __init__(self, size: int = 14) -> None:
        self.font = _font(size)
        self.calls = 0
        self.characters = 0

    def getlength(self, text: str) -> float:
        self.calls += 1
        self.characters += len(text)
        return float(self.font.getlength(text))


def _wrap_one_character_at_a_time(text: str, font: CountingFont, width: float, n: int) -> list[str]:
    """The wrap the preview had before: the oracle the faster one must agree with exactly."""
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
        while font.getlength(current) > width and len(current) > 1:
            cut = len(current) - 1
            while cut > 1 and font.getlength(current[:cut]) > width:
                cut -= 1
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    if len(lines) > n:
        lines = lines[:n]
        last = lines[-1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return lines or [""]


def test_wrap_breaks_lines_exactly_where_it_always_did() -> None:
    rng = random.Random(10)
    pieces = ["a", "girl", "dog", "café", "W" * 25, "i" * 40, "supercalifragilistic", "m" * 12]
    for _ in range(300):
        text = " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        font = CountingFont(rng.choice((8, 11, 14, 18)))
        width = rng.choice((6.0, 25.0, 80.0, 150.0, 333.5))
        lines = rng.choice((1, 2, 3))
        assert _wrap(text, font, width, lines) == _wrap_one_character_at_a_time(
            text, font, width, lines
        ), (text, font.font.size, width, lines)


@pytest.mark.parametrize("length", [2_000, 30_000])
@pytest.mark.parametrize("kind", ["one word", "words"])
def test_wrapping_a_long_caption_measures_about_what_is_drawn(length: int, kind: str) -> None:
    text = "x" * length if kind == "one word" else ("walking " * length)[:length]
    font = CountingFont()
    lines = _wrap(text, font, 300, 3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    # the text is read once; beyond that, a few measurements per line drawn
    assert font.calls <= 80
    assert font.characters <= length + 5_000


def test_a_shot_with_a_30000_character_word_is_drawn_promptly(tmp_path: Path) -> None:
    """It used to take over ten minutes of CPU; the bound here is generous on purpose."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ONMODEL_"))}
    env["ONMODEL_HOME"] = str(tmp_path / "home")

    def onmodel(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "onmodel", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    assert onmodel("character", "new", "Rin", "--prompt", "a girl").returncode == 0
    assert onmodel("session", "new", "rin").returncode == 0
    made = onmodel("shot", "--pose", "x" * 30_000, "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["status"] == "succeeded"
