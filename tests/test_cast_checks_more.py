"""Checks of a cast as the README makes one (issue 15): members made from a prompt alone, with
no sheet, in the README's bedroom are on model, so ``--takes`` does not spend every take; a
drifted member is still caught; the demo's check report covers its cast shot; a member whose
hair drifted is not also reported to have lost the hair clip drawn on that hair."""

from __future__ import annotations

from pathlib import Path

import pytest

from cast_sheets import BLUE_HAIR, README_BEDROOM
from cli_inprocess import run_cli
from onmodel.checkers.base import Verdict
from onmodel.checkview import members_of
from onmodel.demo import BEDROOM_SHEET, DEMO_SHEET, MAX_SHEET, RIN_SHEET, run_demo
from onmodel.providers.preview import drift_params
from onmodel.store.records import CheckRecord
from onmodel.studio import Studio


@pytest.fixture
def sheetless(studio: Studio) -> Studio:
    """Mia, Rin and Max made from a prompt alone, the README's bedroom, one session."""
    studio.create_character("Mia", prompt="a cheerful girl", provider="preview")
    studio.create_character("Rin", prompt="a quiet boy", provider="preview")
    studio.create_character("Max", prompt="a small dog", kind="creature", provider="preview")
    studio.create_character(
        "Bedroom", prompt="Mia's cosy bedroom", kind="set", sheet=README_BEDROOM, provider="preview"
    )
    studio.start_session("mia", provider="preview", with_=["rin", "max", "bedroom"])
    return studio


def by_member(record: CheckRecord) -> dict[str, CheckRecord]:
    return {
        str(member.returned.get("member", "")) or "lead": member for member in members_of(record)
    }


def checked_with_hair(studio: Studio, action: str, colour: str) -> dict[str, CheckRecord]:
    """A shot of the lead with Rin and Max in the bedroom, the lead's hair drawn in
    ``colour``, checked: each member's row by name."""
    shot = studio.session().shot(
        action, with_=["rin", "max"], set_="bedroom", params=drift_params(hair_color=colour)
    )
    return by_member(studio.check(shot, "palette"))


def drifted(record: CheckRecord) -> list[str]:
    return [t["trait"] for t in record.traits or [] if t["verdict"] == Verdict.DRIFTED]


def test_sheetless_members_in_the_readme_bedroom_pass_on_the_first_take(
    sheetless: Studio, isolated_home: Path
) -> None:
    outcome = run_cli(
        isolated_home,
        "shot",
        "playing guitar",
        "--with",
        "rin",
        "--with",
        "max",
        "--set",
        "bedroom",
        "--check",
        "palette",
        "--takes",
        "3",
    )
    assert outcome.code == 0, outcome.stdout + outcome.stderr
    assert "take 1/3" in outcome.stdout and "take 2/3" not in outcome.stdout  # no take wasted
    assert "Mia on model 100 · Rin on model 100 · Max on model 100" in outcome.stdout
    assert "drifted" not in outcome.stdout
    assert "not checked: Bedroom (set)" in outcome.stdout


@pytest.mark.parametrize(
    "with_", [["rin"], ["rin", "max"], []], ids=["two in the set", "three", "the lead alone"]
)
def test_no_sheetless_member_drifts_on_the_backdrop_of_its_anchor(
    sheetless: Studio, with_: list[str]
) -> None:
    shot = sheetless.session().shot("playing guitar", with_=with_, set_="bedroom")
    record = sheetless.check(shot, "palette")
    assert record.passed is True
    for member in members_of(record):
        assert drifted(member) == [] and (member.score or 0) >= 95
        # a trait read off a sheet-less anchor is the character's colour, never the plain
        # background it stood on nor the shadow it cast there
        assert all(t["trait"].startswith("anchor colour") for t in member.traits or [])
        assert not {"#dfddd8", "#dbd9d4", "#d1cfcb"} & {t["expected"] for t in member.traits or []}


def test_a_sheetless_member_whose_hair_drifted_in_the_set_is_still_caught(
    sheetless: Studio,
) -> None:
    members = checked_with_hair(sheetless, "playing guitar", BLUE_HAIR)
    assert members["Mia"].passed is False and drifted(members["Mia"])
    assert members["Rin"].passed is True and members["Max"].passed is True


def test_the_demo_checks_its_cast_shot_member_by_member(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "demo", make_current=False)
    assert [image.id for image, _ in result.checks][-1] == result.cast_shot.id
    assert len(result.checks) == 7  # six shots of Mia, and the cast shot
    _, record = result.checks[-1]
    members = by_member(record)
    assert list(members) == ["Mia", "Rin", "Max"]
    assert all(member.passed and member.score == 100 for member in members.values())


@pytest.fixture
def demo_cast(studio: Studio) -> Studio:
    """The demo's Mia (with her gold star hair clip), Rin, Max and bedroom, one session."""
    studio.create_character("Mia", prompt="a girl with orange hair", sheet=DEMO_SHEET)
    studio.create_character("Rin", prompt="a boy with black hair", sheet=RIN_SHEET)
    studio.create_character("Max", prompt="a dog", kind="creature", sheet=MAX_SHEET)
    studio.create_character("Bedroom", prompt="a bedroom", kind="set", sheet=BEDROOM_SHEET)
    studio.start_session("mia", with_=["rin", "max", "bedroom"])
    return studio


@pytest.mark.parametrize("colour", [BLUE_HAIR, "#d22b2b", "#1a1a1a"])
def test_recoloured_hair_does_not_take_the_hair_clip_with_it(
    demo_cast: Studio, colour: str
) -> None:
    members = checked_with_hair(demo_cast, "waving", colour)
    # the hair (and the palette entry of its colour) drifted; the clip is drawn in its own
    # gold on that hair, and is still there
    assert drifted(members["Mia"]) == ["hair_color", "palette: #f0a04b"]
    clip = next(t for t in members["Mia"].traits or [] if "hair clip" in t["trait"])
    assert clip["verdict"] == Verdict.SAME
    assert members["Rin"].passed is True and members["Max"].passed is True
