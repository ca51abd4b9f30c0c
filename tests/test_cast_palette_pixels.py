"""The palette's verdict on a cast picture does not depend on whether the provider said where
it drew each member: the preview records boxes (``returned["figures"]``), real providers and
ChatGPT attachments never do, and the same picture must get the same per-member verdicts from
its pixels alone (a set's furniture beside a member is no part of it, a sliver cut off a
figure is no member). A member really drifted is still caught without boxes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cast_sheets import BLUE_HAIR, README_BEDROOM
from onmodel.checkers.base import CheckOutcome, CheckSubject, Verdict
from onmodel.checkers.palette import PaletteChecker
from onmodel.demo import BEDROOM_SHEET, DEMO_SHEET, MAX_SHEET
from onmodel.providers.preview import drift_params
from onmodel.studio import Studio


@pytest.fixture
def sheetless(studio: Studio) -> Studio:
    """Mia, Rin and Max made from a prompt alone (the reviewer's repro), the README's bedroom."""
    studio.create_character("Mia", prompt="girl", provider="preview")
    studio.create_character("Rin", prompt="boy", provider="preview")
    studio.create_character("Max", prompt="dog", kind="creature", provider="preview")
    studio.create_character(
        "Bedroom", prompt="room", kind="set", sheet=README_BEDROOM, provider="preview"
    )
    studio.start_session("mia", provider="preview", with_=["rin", "max", "bedroom"])
    return studio


def verdicts(outcomes: list[CheckOutcome | Exception]) -> list[dict[str, Verdict]]:
    found = []
    for outcome in outcomes:
        assert isinstance(outcome, CheckOutcome), outcome
        found.append({t.trait: t.verdict for t in outcome.traits})
    return found


def with_and_without_boxes(
    studio: Studio, with_: list[str], **params: str
) -> tuple[list[CheckSubject], list[CheckOutcome | Exception], list[CheckOutcome | Exception]]:
    shot = studio.session().shot(
        "trio", with_=with_, set_="bedroom", params=drift_params(**params) if params else None
    )
    subjects = studio.checks.subjects(shot)
    assert all(subject.box is not None for subject in subjects)  # the preview says where
    boxed = PaletteChecker().check_cast(subjects)
    pixels = PaletteChecker().check_cast([replace(s, box=None) for s in subjects])
    return subjects, list(boxed), list(pixels)


@pytest.mark.parametrize("with_", [["rin", "max"], ["max"], ["rin"]])
def test_the_same_cast_picture_gets_the_same_verdicts_with_or_without_boxes(
    sheetless: Studio, with_: list[str]
) -> None:
    subjects, boxed, pixels = with_and_without_boxes(sheetless, with_)
    assert verdicts(pixels) == verdicts(boxed)
    for subject, outcome in zip(subjects, pixels, strict=True):
        assert isinstance(outcome, CheckOutcome)
        drifted = [t.trait for t in outcome.traits if t.verdict == Verdict.DRIFTED]
        assert drifted == [], (subject.character_name, drifted)


def test_a_drifted_member_is_still_caught_from_pixels_alone(sheetless: Studio) -> None:
    # the preview draws a cast's drift on its first figure: Mia
    _, boxed, pixels = with_and_without_boxes(sheetless, ["rin", "max"], hair_color=BLUE_HAIR)
    for outcomes in (boxed, pixels):
        mia, rin, max_ = outcomes
        assert isinstance(mia, CheckOutcome) and isinstance(rin, CheckOutcome)
        assert isinstance(max_, CheckOutcome)
        assert any(t.verdict == Verdict.DRIFTED for t in mia.traits)
        assert all(t.verdict != Verdict.DRIFTED for t in rin.traits + max_.traits)


@pytest.fixture
def demo_cast(studio: Studio) -> Studio:
    """The demo's Mia, Max and bedroom: Max's eye colour (#2b1d14) is close to the outline's."""
    studio.create_character("Mia", prompt="a girl with orange hair", sheet=DEMO_SHEET)
    studio.create_character("Max", prompt="a dog", kind="creature", sheet=MAX_SHEET)
    studio.create_character("Bedroom", prompt="a bedroom", kind="set", sheet=BEDROOM_SHEET)
    studio.start_session("mia", with_=["max", "bedroom"])
    return studio


def test_the_demos_dog_beside_the_bookshelf_keeps_its_eye_colour(demo_cast: Studio) -> None:
    # the dog's nose overlaps the bookshelf, whose outlines join the dog's own to the frame's
    # border: its outline (the colour its eyes are measured as) is still the dog's
    subjects, boxed, pixels = with_and_without_boxes(demo_cast, ["max"])
    assert verdicts(pixels) == verdicts(boxed)
    for subject, outcome in zip(subjects, pixels, strict=True):
        assert isinstance(outcome, CheckOutcome)
        drifted = [t.trait for t in outcome.traits if t.verdict == Verdict.DRIFTED]
        assert drifted == [], (subject.character_name, drifted)
