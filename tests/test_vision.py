"""Image analysis behind the checks: the subject apart from its background, the anchor
hygiene warnings, and a sheet proposed from the anchor's own colours."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from onmodel.checkers.palette import PaletteChecker
from onmodel.demo import DEMO_SHEET
from onmodel.errors import InvalidImageError
from onmodel.providers.base import GenerationRequest
from onmodel.providers.preview import render
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.vision.colours import delta_e, to_lab
from onmodel.vision.hygiene import anchor_hygiene
from onmodel.vision.subject import find_subject, load_rgb

SHEET = ModelSheet(
    hair_color="#c9642b", eye_color="#3b7dd8", skin_color="#f7cfae", outfit_colors=["#3bb273"]
)


def anchor(folder: Path, scene: str = "", sheet: ModelSheet = SHEET) -> Path:
    image = render(
        GenerationRequest(
            kind="shot" if scene else "anchor",
            prompt="",
            model="preview",
            params={},
            sheet=sheet,
            request=ShotRequest(scene=scene),
            character_name="Ada",
        )
    )
    path = folder / "anchor.png"
    image.save(path)
    return path


def test_the_subject_is_the_character_not_the_sky(tmp_path: Path) -> None:
    subject = find_subject(load_rgb(anchor(tmp_path, "beach")))
    height, width = subject.mask.shape
    assert not subject.mask[: height // 20].any()  # the sky above the head
    assert subject.mask[height // 2, width // 2]  # the body at the centre
    assert subject.edges_touched() == []


def test_a_clean_preview_anchor_has_no_warnings(tmp_path: Path) -> None:
    assert anchor_hygiene(anchor(tmp_path)) == []


def test_a_busy_anchor_is_warned_of(tmp_path: Path) -> None:
    warnings = anchor_hygiene(anchor(tmp_path, "city at night"))
    assert any("background is not plain" in w for w in warnings)


def test_a_cut_off_and_a_small_subject_are_warned_of(tmp_path: Path) -> None:
    full = Image.open(anchor(tmp_path)).convert("RGB")
    cut = tmp_path / "cut.png"
    full.crop((96, 120, 416, 400)).save(cut)  # the frame cuts through the head and the body
    assert any("touches the frame's top" in w for w in anchor_hygiene(cut))
    small = tmp_path / "small.png"
    canvas = Image.new("RGB", (1400, 1400), (246, 244, 239))
    canvas.paste(full.crop((0, 0, 512, 440)).resize((256, 220)), (572, 590))
    canvas.save(small)
    assert any("small in the frame" in w for w in anchor_hygiene(small))


def test_an_unreadable_anchor_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(InvalidImageError):
        anchor_hygiene(broken)


def test_describe_proposes_the_anchor_s_colours_and_keeps_the_words(tmp_path: Path) -> None:
    current = ModelSheet(style="flat cartoon", hair="bob")
    proposed = PaletteChecker().describe(anchor(tmp_path), "image/png", current=current)
    assert proposed.style == "flat cartoon" and proposed.hair == "bob"
    for field in ("hair_color", "skin_color"):
        found = getattr(proposed, field)
        assert found.startswith("#")
        wanted = getattr(SHEET, field)
        lab = [to_lab(tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))) for c in (found, wanted)]
        assert float(delta_e(lab[0], lab[1])) < 3, field
    assert proposed.outfit_colors[0] == "#3bb273"
    assert proposed.eye_color.startswith("#")


def test_describe_reads_the_outfit_off_its_fills_not_its_outlines(tmp_path: Path) -> None:
    """The demo's cream hoodie is close to its skin and covers more than the hair: it is an
    outfit colour of its own; the grey outline round the jeans is none."""
    path = anchor(tmp_path, sheet=DEMO_SHEET)
    proposed = PaletteChecker().describe(path, "image/png", current=ModelSheet())
    assert len(proposed.outfit_colors) == 2
    for found, wanted in zip(proposed.outfit_colors, ["#f3e9d2", "#1f3a5f"], strict=True):
        lab = [to_lab(tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))) for c in (found, wanted)]
        assert float(delta_e(lab[0], lab[1])) < 3, found


def test_describe_keeps_a_sheet_colour_it_reads_back_but_for_noise(tmp_path: Path) -> None:
    sheet = SHEET.model_copy(update={"outfit_colors": ["#ffffff", "#34495e"]})
    proposed = PaletteChecker().describe(anchor(tmp_path, sheet=sheet), "image/png", current=sheet)
    assert proposed.outfit_colors == ["#ffffff", "#34495e"]
    assert proposed.hair_color == SHEET.hair_color and proposed.skin_color == SHEET.skin_color


def backdrop(folder: Path, name: str, paint: Callable[[ImageDraw.ImageDraw], None]) -> Path:
    """The preview's figure pasted on a backdrop ``paint`` draws."""
    figure = Image.open(anchor(folder)).convert("RGB")
    subject = find_subject(load_rgb(folder / "anchor.png"))
    canvas = Image.new("RGB", figure.size)
    paint(ImageDraw.Draw(canvas))
    mask = Image.fromarray(subject.mask).resize(figure.size, Image.Resampling.NEAREST)
    canvas.paste(figure, (0, 0), mask)
    path = folder / f"{name}.png"
    canvas.save(path)
    return path


def test_a_gradient_backdrop_is_plain_and_a_busy_one_is_not(tmp_path: Path) -> None:
    def gradient(draw: ImageDraw.ImageDraw) -> None:
        for y in range(512):
            shade = 250 - y * 120 // 512
            draw.line((0, y, 511, y), fill=(shade, shade, min(255, shade + 10)))

    def checks(draw: ImageDraw.ImageDraw) -> None:
        for x in range(0, 512, 32):
            for y in range(0, 512, 32):
                colour = (200, 80, 60) if (x + y) // 32 % 2 else (60, 120, 200)
                draw.rectangle((x, y, x + 31, y + 31), fill=colour)

    assert anchor_hygiene(backdrop(tmp_path, "gradient", gradient)) == []
    busy = anchor_hygiene(backdrop(tmp_path, "checks", checks))
    assert any("background is not plain" in w for w in busy)


def test_a_tiny_subject_is_under_1_percent_of_the_frame_not_0(tmp_path: Path) -> None:
    figure = Image.open(anchor(tmp_path)).convert("RGB")
    tiny = tmp_path / "tiny.png"
    canvas = Image.new("RGB", (1400, 1400), (246, 244, 239))
    canvas.paste(figure.crop((96, 40, 416, 440)).resize((80, 100)), (660, 650))
    canvas.save(tiny)
    small = [w for w in anchor_hygiene(tiny) if "small in the frame" in w]
    assert small and "(under 1% of it)" in small[0]
