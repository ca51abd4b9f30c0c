"""The palette check (issue 14): a recoloured trait is caught and named, what the request
changes is not drift, and a colour the background also shows cannot vouch for the character."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onmodel.checkers.base import DEFAULT_MIN_SCORE, CheckOutcome, CheckSubject, Verdict
from onmodel.checkers.palette import PaletteChecker
from onmodel.providers.base import GenerationRequest
from onmodel.providers.preview import render
from onmodel.sheet import ModelSheet, ShotRequest

SEA_BLUE = "#4ba5d3"  # the preview's beach sea runs through this blue
SHEET = ModelSheet(
    hair="long hair",
    hair_color=SEA_BLUE,
    eye_color="#2e8b57",
    skin_color="#ffe0c8",
    outfit_colors=["#e4572e", "#34495e"],
)


def draw(
    folder: Path, name: str, kind: str = "shot", drift: dict[str, Any] | None = None, **request: str
) -> Path:
    image = render(
        GenerationRequest(
            kind=kind,  # type: ignore[arg-type]
            prompt="",
            model="preview",
            params={"drift": drift} if drift else {},
            sheet=SHEET,
            request=ShotRequest(**request),
            character_name="Mia",
        )
    )
    path = folder / f"{name}.png"
    image.save(path)
    return path


def check(folder: Path, drift: dict[str, Any] | None = None, **request: str) -> CheckOutcome:
    anchor = draw(folder, "anchor", kind="anchor")
    shot = draw(folder, "shot", drift=drift, **request)
    return PaletteChecker().check(
        CheckSubject(
            image=shot,
            image_mime="image/png",
            anchor=anchor,
            anchor_mime="image/png",
            sheet=SHEET,
            request=ShotRequest(**request),
            character_name="Mia",
        )
    )


def verdicts(outcome: CheckOutcome) -> dict[str, Verdict]:
    return {t.trait: t.verdict for t in outcome.traits}


def test_recoloured_hair_is_caught_named_and_measured(tmp_path: Path) -> None:
    assert [t.trait for t in check(tmp_path, {"hair_color": "#d22b2b"}, scene="park").drifted] == [
        "hair_color"
    ]
    outcome = check(tmp_path, drift={"hair_color": "#d22b2b"}, expression="smiling")
    assert [t.trait for t in outcome.drifted] == ["hair_color"]
    hair = outcome.drifted[0]
    assert hair.expected == SEA_BLUE and hair.measured == "#d22b2b"
    assert hair.delta_e is not None and hair.delta_e > 30
    assert outcome.score < DEFAULT_MIN_SCORE


def test_blue_hair_on_the_beach_passes_and_its_red_drift_does_not_pass_on_the_sea(
    tmp_path: Path,
) -> None:
    kept = check(tmp_path, scene="beach")
    assert kept.drifted == [] and kept.score >= DEFAULT_MIN_SCORE
    drifted = check(tmp_path, drift={"hair_color": "#d22b2b"}, scene="beach")
    assert verdicts(drifted)["hair_color"] == Verdict.DRIFTED
    assert drifted.score < DEFAULT_MIN_SCORE


def test_a_requested_outfit_is_changed_by_request_not_drift(tmp_path: Path) -> None:
    outcome = check(tmp_path, outfit="green raincoat", scene="city")
    found = verdicts(outcome)
    assert found["outfit_colors: #e4572e"] == Verdict.CHANGED
    assert found["hair_color"] == Verdict.SAME
    assert outcome.score >= DEFAULT_MIN_SCORE


def test_an_undrifted_night_shot_passes(tmp_path: Path) -> None:
    outcome = check(tmp_path, scene="city at night", pose="selfie", action="with a dog")
    assert outcome.drifted == [] and outcome.score >= DEFAULT_MIN_SCORE


def test_recoloured_eyes_and_top_are_caught(tmp_path: Path) -> None:
    eyes = check(tmp_path, drift={"eye_color": "#8e7618"}, scene="snowy mountain")
    assert [t.trait for t in eyes.drifted] == ["eye_color"]
    top = check(tmp_path, drift={"outfit_color": "#800080"}, scene="desert")
    assert [t.trait for t in top.drifted] == ["outfit_colors: #e4572e"]


def test_a_sheet_colour_the_anchor_does_not_show_is_not_visible_and_not_scored(
    tmp_path: Path,
) -> None:
    global SHEET
    plain = SHEET
    SHEET = plain.model_copy(update={"palette": ["#ffcc00"]})
    try:
        outcome = check(tmp_path, scene="park")
    finally:
        SHEET = plain
    assert verdicts(outcome)["palette: #ffcc00"] == Verdict.NOT_VISIBLE
    assert outcome.score >= DEFAULT_MIN_SCORE
