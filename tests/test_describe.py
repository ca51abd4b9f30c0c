"""Model sheets from images (issue 14): ``character describe`` proposes a sheet from the
anchor (offline from its colours, or from the judge), prints what would change, and with
``--write`` saves it as a new sheet version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image as PILImage

from cli_inprocess import run_cli, snapshot
from fakeopenai import FakeOpenAI
from onmodel.checkers import FACTORIES
from onmodel.checkers.base import Checker, CheckOutcome, CheckSubject
from onmodel.errors import MissingKeyError
from onmodel.sheet import ModelSheet
from onmodel.studio import Studio

UNSEEN = ("avoid", "layout", "fixed_objects", "lighting")  # sheet fields no judge reads


class Seer(Checker):
    """A checker that reads the anchor as the test says, and records what it was shown."""

    name = "seer"
    shown: ClassVar[list[tuple[Path, str, ModelSheet, str]]] = []

    def check(self, subject: CheckSubject) -> CheckOutcome:
        raise AssertionError("describe never checks a shot")

    def describe(
        self, anchor: Path, mime: str, *, current: ModelSheet, character_name: str = ""
    ) -> ModelSheet:
        self.shown.append((anchor, mime, current, character_name))
        return current.merged_with(ModelSheet(hair="short bob", palette=["#112233", "#445566"]))


@pytest.fixture
def seer(monkeypatch: pytest.MonkeyPatch) -> type[Seer]:
    monkeypatch.setitem(FACTORIES, "seer", lambda context: Seer(context))
    monkeypatch.setattr(Seer, "shown", [])
    return Seer


@pytest.fixture
def studio_with_mia(studio: Studio) -> Studio:
    studio.create_character("Mia", prompt="a girl with red hair and green eyes")
    return studio


def test_the_palette_proposes_hex_colours_from_the_anchor(studio_with_mia: Studio) -> None:
    studio = studio_with_mia
    proposal = studio.describe_character("mia")
    assert proposal.current.hair_color == "red"  # guessed from the prompt
    changes = proposal.changes()
    assert changes["hair_color"][0] == "red" and changes["hair_color"][1].startswith("#")
    assert len(studio.sheet_history("mia")) == 1  # a proposal saves nothing


def test_describe_prints_a_diff_and_write_adds_a_sheet_version(
    studio_with_mia: Studio, seer: type[Seer]
) -> None:
    studio = studio_with_mia
    home = studio.paths.home
    outcome = run_cli(home, "character", "describe", "mia", "--checker", "seer")
    assert outcome.code == 0, outcome
    assert outcome.stdout.splitlines() == [
        "mia's model sheet, as seer reads the anchor:",
        "  hair: - → short bob",
        "  palette: - → #112233, #445566",
        "not saved; to save it: onmodel character describe mia --write",
    ]
    anchor = studio.character("mia").anchor
    assert anchor is not None
    assert seer.shown[0][:2] == (anchor.path, "image/png") and seer.shown[0][3] == "Mia"
    assert len(studio.sheet_history("mia")) == 1

    written = run_cli(home, "character", "describe", "mia", "--checker", "seer", "--write")
    assert written.code == 0, written
    assert written.stdout.splitlines()[-1] == "saved: mia's model sheet is now version 2"
    history = studio.sheet_history("mia")
    assert [version.number for version in history] == [1, 2]
    assert history[-1].sheet.hair == "short bob" and history[-1].sheet.hair_color == "red"

    again = run_cli(home, "character", "describe", "mia", "--checker", "seer", "--write")
    assert again.code == 0 and again.stdout == "mia's model sheet already says what seer sees\n"
    assert len(studio.sheet_history("mia")) == 2


def test_describe_json_has_the_changes_and_the_version(
    studio_with_mia: Studio, seer: type[Seer]
) -> None:
    home = studio_with_mia.paths.home
    args = ("character", "describe", "mia", "--checker", "seer", "--json")
    data = json.loads(run_cli(home, *args).stdout)
    assert data["changes"] == {
        "hair": {"from": "", "to": "short bob"},
        "palette": {"from": [], "to": ["#112233", "#445566"]},
    }
    assert data["version"] is None and data["proposed"]["hair_color"] == "red"
    assert json.loads(run_cli(home, *args, "--write").stdout)["version"] == 2


def test_the_judge_needs_its_key_before_anything_is_asked(studio_with_mia: Studio) -> None:
    before = snapshot(studio_with_mia.paths.home)
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        studio_with_mia.describe_character("mia", "judge")
    outcome = run_cli(
        studio_with_mia.paths.home, "character", "describe", "mia", "--checker", "judge"
    )
    assert outcome.code == 2 and "needs an API key" in outcome.stderr
    assert snapshot(studio_with_mia.paths.home) == before


def test_the_judge_describes_an_imported_picture_from_the_cli(
    studio: Studio, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ChatGPT user's case: an imported picture, an empty sheet, and the vision model's
    reading of it (structured output) saved as version 2."""
    picture = tmp_path / "from-chatgpt.png"
    PILImage.new("RGB", (64, 64), (250, 250, 250)).save(picture)
    studio.import_character("Kit", picture)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-describe-test-0123456789abcdef")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    answer: dict[str, Any] = {key: "" for key in ModelSheet.model_fields if key not in UNSEEN}
    answer.update(
        hair="short bob", hair_color="#d2691e", outfit_colors=["#ffd700"], palette=[], must_keep=[]
    )
    fake_openai.answer_next(answer)
    args = ("character", "describe", "kit", "--checker", "judge", "--write")
    outcome = run_cli(studio.paths.home, *args)
    assert outcome.code == 0, outcome
    assert outcome.stdout.splitlines() == [
        "kit's model sheet, as judge reads the anchor:",
        "  hair: - → short bob",
        "  hair_color: - → #d2691e",
        "  outfit_colors: - → #ffd700",
        "saved: kit's model sheet is now version 2",
    ]
    assert studio.sheet_history("kit")[-1].sheet.hair_color == "#d2691e"
    fake_openai.assert_no_rejections()
