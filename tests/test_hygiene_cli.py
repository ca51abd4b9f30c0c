"""Anchor hygiene (issue 14): a busy, cut-off or small anchor is warned of when a character is
made, imported or given a new anchor; ``--strict`` refuses it (an import or a promotion
writes nothing; a new character keeps its paid-for anchor and exits non-zero)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image as PILImage
from PIL import ImageDraw

from cli_inprocess import run_cli, snapshot
from onmodel.errors import UsageError
from onmodel.providers import FACTORIES
from onmodel.providers.base import GenerationRequest, GenerationResult
from onmodel.providers.preview import PreviewProvider
from onmodel.studio import Studio
from onmodel.studio.cast import AnchorHygieneError

STRIPES = [(200, 60, 60), (60, 160, 80), (230, 200, 60), (90, 90, 200)]


def picture(*, busy: bool) -> bytes:
    """A figure on a plain background or, ``busy``, on coloured stripes it stands across."""
    image = PILImage.new("RGB", (256, 256), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    if busy:
        for left in range(0, 256, 16):
            draw.rectangle((left, 0, left + 15, 255), fill=STRIPES[left // 16 % 4])
    draw.ellipse((90, 30, 166, 106), fill=(240, 200, 170))
    draw.rectangle((80, 106, 176, 220), fill=(40, 90, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class BusyDrawer(PreviewProvider):
    """The preview's bookkeeping, but every picture on a busy background."""

    name = "busy"

    def generate(self, request: GenerationRequest) -> GenerationResult:
        drawn = super().generate(request)
        drawn.data, drawn.format = picture(busy=True), "png"
        return drawn


@pytest.fixture
def busy_file(tmp_path: Path) -> Path:
    path = tmp_path / "from-chatgpt.png"
    path.write_bytes(picture(busy=True))
    return path


@pytest.fixture
def busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FACTORIES, "busy", lambda context: BusyDrawer(context))


def test_a_busy_imported_picture_is_imported_with_warnings(studio: Studio, busy_file: Path) -> None:
    outcome = run_cli(studio.paths.home, "character", "import", "Kit", str(busy_file))
    assert outcome.code == 0, outcome
    warnings = outcome.error_lines
    assert warnings[0].startswith("warning: anchor #1: the background is not plain")
    assert all(line.startswith("warning: anchor #1: ") for line in warnings)
    assert studio.anchor_warnings(studio.character("kit").anchor_image_id or 0) == [
        line.removeprefix("warning: anchor #1: ") for line in warnings
    ]


def test_strict_refuses_a_busy_import_and_writes_nothing(studio: Studio, busy_file: Path) -> None:
    before = snapshot(studio.paths.home)
    outcome = run_cli(studio.paths.home, "character", "import", "Kit", str(busy_file), "--strict")
    assert outcome.code == 2
    (line,) = outcome.error_lines
    assert line.startswith(f"error: {busy_file} is not a clean reference: the background")
    assert line.endswith(
        "nothing was imported (crop it or put the character on a plain "
        "background, or import it without --strict)"
    )
    assert snapshot(studio.paths.home) == before

    with pytest.raises(AnchorHygieneError) as raised:  # the library's typed error
        studio.cast.import_character("Kit", busy_file, strict=True)
    assert isinstance(raised.value, UsageError) and raised.value.image_id is None
    assert raised.value.warnings[0].startswith("the background is not plain")
    assert snapshot(studio.paths.home) == before


def test_a_clean_picture_passes_strict_silently(studio: Studio, tmp_path: Path) -> None:
    clean = tmp_path / "clean.png"
    clean.write_bytes(picture(busy=False))
    outcome = run_cli(studio.paths.home, "character", "import", "Kit", str(clean), "--strict")
    assert outcome.code == 0 and outcome.error_lines == []
    made = run_cli(studio.paths.home, "character", "new", "Mia", "--prompt", "a girl", "--strict")
    assert made.code == 0 and made.error_lines == []  # the preview draws on a plain background


def test_new_warns_and_strict_keeps_the_paid_anchor_but_fails(studio: Studio, busy: None) -> None:
    args = ("character", "new", "Mia", "--prompt", "a girl", "--provider", "busy")
    outcome = run_cli(studio.paths.home, *args)
    assert outcome.code == 0
    assert outcome.error_lines[0].startswith("warning: anchor #1: the background is not plain")

    strict = run_cli(studio.paths.home, *args[:2], "Rin", *args[3:], "--strict")
    assert strict.code == 2
    (line,) = strict.error_lines
    assert line.startswith("error: the anchor of rin (image 2) is not a clean reference: ")
    assert "it is kept, as it is paid for" in line and "onmodel character anchor IMAGE" in line
    rin = studio.character("rin")
    assert rin.anchor is not None and rin.anchor.succeeded and rin.anchor_image_id == 2


def test_promoting_a_busy_shot_warns_or_with_strict_is_refused(studio: Studio, busy: None) -> None:
    mia = studio.create_character("Mia", prompt="a girl")
    shot = studio.start_session(mia, provider="busy").shot(pose="waving")
    before = snapshot(studio.paths.home)
    refused = run_cli(studio.paths.home, "character", "anchor", str(shot.id), "--strict")
    assert refused.code == 2
    assert refused.error_lines[0].startswith(f"error: image {shot.id} is not a clean reference")
    assert refused.error_lines[0].endswith(f"mia's anchor stays #{mia.anchor_image_id}")
    assert snapshot(studio.paths.home) == before
    assert studio.character("mia").anchor_image_id == mia.anchor_image_id

    promoted = run_cli(studio.paths.home, "character", "anchor", str(shot.id))
    assert promoted.code == 0 and f"mia's anchor is now #{shot.id}" in promoted.stdout
    assert promoted.error_lines[0].startswith(f"warning: anchor #{shot.id}: the background")


def test_an_image_without_a_picture_has_no_warnings_to_give(studio: Studio) -> None:
    mia = studio.create_character("Mia", prompt="a girl")
    pending = studio.start_session(mia, provider="chatgpt").shot(pose="waving")
    with pytest.raises(UsageError, match="is pending: it has no picture to look at"):
        studio.anchor_warnings(pending)
