"""Variations: a shot list's ``repeat: 3`` sends one request three times, and the offline preview
draws each take with its number ("take 2/3"), so the three differ in bytes and at a glance while
the character itself is drawn the same."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

from PIL import Image, ImageChops

from cli_inprocess import run_cli
from onmodel.providers.base import GenerationRequest
from onmodel.providers.preview import PreviewProvider
from onmodel.sheet import ModelSheet, ShotRequest

SHEET = ModelSheet(hair_color="#f0a04b", eye_color="#2e8b57", outfit="cream hoodie")
CAPTION_LINE = (240, 180, 80)  # the amber rule along the top of the caption strip


def take(variation: int = 1, variations: int = 1) -> bytes:
    request = GenerationRequest(
        kind="shot",
        prompt="Mia playing guitar",
        model="gpt-image-2",
        params={},
        sheet=SHEET,
        request=ShotRequest(pose="playing guitar"),
        character_name="Mia",
        variation=variation,
        variations=variations,
    )
    return PreviewProvider().generate(request).data


def test_takes_of_one_request_differ_only_in_their_caption() -> None:
    takes = [take(n, 3) for n in (1, 2, 3)]
    assert len({hashlib.sha256(data).hexdigest() for data in takes}) == 3
    assert take(2, 3) == takes[1]  # still deterministic: the same take, the same bytes

    first, *others = [Image.open(io.BytesIO(data)).convert("RGB") for data in takes]
    width, height = first.size
    caption_top = next(y for y in range(height) if first.getpixel((0, y)) == CAPTION_LINE)
    for other in others:
        box = ImageChops.difference(first, other).getbbox()
        assert box is not None
        # only the number in the caption's corner changed: the character is drawn the same
        assert box[1] > caption_top and box[0] > width // 2, box


def test_a_single_shot_is_not_numbered() -> None:
    assert take() == take(1, 1) != take(1, 3)


def test_a_repeated_shot_list_makes_distinct_images(isolated_home: Path, tmp_path: Path) -> None:
    prompt = "a cheerful girl with orange hair and green eyes"
    assert run_cli(isolated_home, "character", "new", "Mia", "--prompt", prompt).code == 0
    assert run_cli(isolated_home, "session", "new", "mia").code == 0
    week = tmp_path / "week.yaml"
    week.write_text("shots:\n  - pose: playing guitar\n    repeat: 3\n", encoding="utf-8")
    ran = run_cli(isolated_home, "batch", "run", str(week))
    assert ran.code == 0, ran.stderr

    status = json.loads(run_cli(isolated_home, "batch", "status", str(week), "--json").stdout)
    labels = [shot["label"] for shot in status["shots"]]
    assert labels == [f"playing guitar · take {n}/3" for n in (1, 2, 3)]
    digests = set()
    for shot in status["shots"]:
        shown = json.loads(run_cli(isolated_home, "show", str(shot["image_id"]), "--json").stdout)
        digests.add(shown["file"]["sha256"])
    assert len(digests) == 3
