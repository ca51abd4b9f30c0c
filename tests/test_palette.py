"""The palette check (issue 14): a recoloured trait is caught and named, what the request
changes is not drift, and a colour the background also shows cannot vouch for the character."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageEnhance

from onmodel.checkers.base import DEFAULT_MIN_SCORE, CheckOutcome, CheckSubject, Verdict
from onmodel.checkers.palette import DRIFT_PENALTY, PaletteChecker
from onmodel.demo import DEMO_SHEET
from onmodel.providers.base import GenerationRequest
from onmodel.providers.preview import render
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.studio import Studio
from onmodel.vision.subject import find_subject, load_rgb

SEA_BLUE = "#4ba5d3"  # the preview's beach sea runs through this blue
SHEET = ModelSheet(
    hair="long hair",
    hair_color=SEA_BLUE,
    eye_color="#2e8b57",
    skin_color="#ffe0c8",
    outfit_colors=["#e4572e", "#34495e"],
)


SKY_BLUE = "#8ccbf0"  # the top of the preview's daytime sky
SKY = ModelSheet(
    hair="a girl with sky-blue hair",
    hair_color=SKY_BLUE,
    eye_color="#3bb273",
    skin_color="#f7cfae",
    outfit_colors=["#ffffff", "#34495e"],
)
Light = Callable[[Image.Image], Image.Image]


def draw(
    folder: Path,
    name: str,
    kind: str = "shot",
    drift: dict[str, Any] | None = None,
    sheet: ModelSheet = SHEET,
    size: tuple[int, int] = (512, 512),
    light: Light | None = None,
    **request: str,
) -> Path:
    image = render(
        GenerationRequest(
            kind=kind,
            prompt="",
            model="preview",
            params={"drift": drift} if drift else {},
            sheet=sheet,
            request=ShotRequest(**request),
            character_name="Mia",
        ),
        size,
    )
    path = folder / f"{name}.png"
    (light(image) if light else image).save(path)
    return path


def check(
    folder: Path,
    drift: dict[str, Any] | None = None,
    sheet: ModelSheet = SHEET,
    size: tuple[int, int] = (512, 512),
    light: Light | None = None,
    **request: str,
) -> CheckOutcome:
    anchor = draw(folder, "anchor", kind="anchor", sheet=sheet, size=size)
    shot = draw(folder, "shot", drift=drift, sheet=sheet, size=size, light=light, **request)
    return PaletteChecker().check(
        CheckSubject(
            image=shot,
            image_mime="image/png",
            anchor=anchor,
            anchor_mime="image/png",
            sheet=sheet,
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
    sheet = SHEET.model_copy(update={"palette": ["#ffcc00"]})
    outcome = check(tmp_path, sheet=sheet, scene="park")
    assert verdicts(outcome)["palette: #ffcc00"] == Verdict.NOT_VISIBLE
    assert outcome.score >= DEFAULT_MIN_SCORE


def test_dark_trousers_on_a_night_s_dark_ground_stay_part_of_the_character(
    tmp_path: Path,
) -> None:
    subject = find_subject(load_rgb(draw(tmp_path, "shot", scene="space in the rain")))
    trousers = (subject.rgb == (0x34, 0x49, 0x5E)).all(axis=2)
    assert (trousers & subject.mask).sum() > 0.9 * trousers.sum() > 0
    assert check(tmp_path, scene="space in the rain").drifted == []


def test_a_sunset_sky_of_the_skin_s_colour_beside_the_face_is_no_false_alarm(
    tmp_path: Path,
) -> None:
    """The sky between the trees joins the face's blob of skin colour: measured from that
    blob, the trousers and the clip would be looked for in the wrong place."""
    tan = SHEET.model_copy(
        update={"hair": "short spiky hair", "hair_color": "#1a1a1a", "skin_color": "#c68a63"}
    )
    outcome = check(
        tmp_path,
        sheet=tan,
        size=(512, 384),
        scene="forest at sunset",
        action="with a cat",
        expression="surprised",
    )
    assert outcome.drifted == [] and outcome.score >= DEFAULT_MIN_SCORE


def test_a_dropped_gold_star_hair_clip_is_caught(tmp_path: Path) -> None:
    sheet = SHEET.model_copy(update={"must_keep": ["small gold star hair clip"]})
    kept = check(tmp_path, sheet=sheet, scene="park", pose="waving")
    assert verdicts(kept)["must_keep: small gold star hair clip"] == Verdict.SAME
    dropped = check(tmp_path, {"drop": ["star hair clip"]}, sheet=sheet, scene="park")
    assert [t.trait for t in dropped.drifted] == ["must_keep: small gold star hair clip"]
    assert dropped.score < DEFAULT_MIN_SCORE


def test_green_eyes_are_not_vouched_for_by_the_forest_beside_the_head(tmp_path: Path) -> None:
    outcome = check(
        tmp_path,
        {"eye_color": "#800080"},
        scene="forest",
        action="with a cat",
        expression="surprised",
    )
    assert [t.trait for t in outcome.drifted] == ["eye_color"]
    assert outcome.drifted[0].measured == "#800080"


def test_recoloured_skin_beside_a_pale_cat_is_caught(tmp_path: Path) -> None:
    outcome = check(tmp_path, {"skin_color": "#800080"}, scene="beach", action="with a cat")
    assert [t.trait for t in outcome.drifted] == ["skin_color"]


def test_the_demo_s_running_shot_in_sportswear_is_on_model_and_its_eyes_still_checked(
    tmp_path: Path,
) -> None:
    """The demo's cream hoodie is close to its skin, and its palette repeats the outfit
    colours: a requested outfit changes those entries too, and nothing else drifts."""
    sportswear = "sportswear: a red tracksuit and white sneakers"
    outcome = check(tmp_path, sheet=DEMO_SHEET, action="running", outfit=sportswear)
    found = verdicts(outcome)
    assert outcome.drifted == [] and outcome.score >= DEFAULT_MIN_SCORE
    assert found["palette: #f3e9d2"] == found["palette: #1f3a5f"] == Verdict.CHANGED
    assert found["eye_color"] == found["skin_color"] == found["palette: #2e8b57"] == Verdict.SAME
    drifted = check(
        tmp_path, {"eye_color": "#3b5ba5"}, sheet=DEMO_SHEET, action="running", outfit=sportswear
    )
    assert {t.trait for t in drifted.drifted} == {"eye_color", "palette: #2e8b57"}
    assert drifted.score == 100 - DRIFT_PENALTY  # one drifted colour, counted once


@pytest.mark.parametrize("scene", ["park", "beach"])
def test_sky_blue_hair_under_the_sky_passes_and_red_hair_does_not_pass_on_the_sky(
    tmp_path: Path, scene: str
) -> None:
    """The hair is the sky's own colour: the sky must neither swallow it nor stand in for it."""
    kept = check(tmp_path, sheet=SKY, pose="standing", scene=scene)
    assert kept.drifted == [] and kept.score >= DEFAULT_MIN_SCORE
    assert verdicts(kept)["hair_color"] == Verdict.SAME
    red = check(tmp_path, {"hair_color": "#d7263d"}, sheet=SKY, pose="standing", scene=scene)
    assert [t.trait for t in red.drifted] == ["hair_color"]
    assert red.drifted[0].measured == "#d7263d" and red.score < DEFAULT_MIN_SCORE


@pytest.mark.parametrize(
    ("top", "scene"),
    [("#f6f4ef", ""), ("#f2e4d0", "kitchen")],  # the plain backdrop; the kitchen's wall
)
def test_a_top_of_the_background_s_colour_passes_and_its_recolour_is_caught(
    tmp_path: Path, top: str, scene: str
) -> None:
    sheet = SKY.model_copy(update={"outfit_colors": [top, "#34495e"]})
    kept = check(tmp_path, sheet=sheet, pose="standing", scene=scene)
    assert kept.drifted == [] and kept.score >= DEFAULT_MIN_SCORE
    red = check(tmp_path, {"outfit_color": "#d7263d"}, sheet=sheet, pose="standing", scene=scene)
    assert [t.trait for t in red.drifted] == [f"outfit_colors: {top}"]
    assert red.score < DEFAULT_MIN_SCORE


def darker(factor: float) -> Light:
    return lambda image: ImageEnhance.Brightness(image).enhance(factor)


def warmer(image: Image.Image) -> Image.Image:
    gains = (0.95, 0.8, 0.6)
    bands = image.convert("RGB").split()
    return Image.merge(
        "RGB", [b.point(lambda v, g=g: round(v * g)) for b, g in zip(bands, gains, strict=True)]
    )


@pytest.mark.parametrize(
    ("light", "scene"),
    [(darker(0.8), "park at night"), (darker(0.7), "park at night"), (warmer, "park at sunset")],
    ids=["night at 0.8", "night at 0.7", "warm sunset"],
)
def test_a_shot_lit_by_its_scene_is_on_model_and_a_recolour_under_that_light_is_caught(
    tmp_path: Path, light: Light, scene: str
) -> None:
    """A real model lights the character with the scene: colours that changed only with the
    light are changed by request, the light named, and red hair in it is still drift."""
    lit = check(tmp_path, sheet=SKY, light=light, pose="standing", scene=scene)
    assert lit.drifted == [] and lit.score >= DEFAULT_MIN_SCORE
    hair = next(t for t in lit.traits if t.trait == "hair_color")
    assert hair.verdict == Verdict.CHANGED and scene.split()[-1] in hair.note
    red = check(
        tmp_path, {"hair_color": "#d7263d"}, sheet=SKY, light=light, pose="standing", scene=scene
    )
    assert [t.trait for t in red.drifted] == ["hair_color"]
    assert red.score < DEFAULT_MIN_SCORE


def test_a_character_made_from_a_prompt_alone_is_measured_from_its_face_too(
    studio: Studio,
) -> None:
    """A sheet guessed from "orange hair and green eyes" names no skin; the face is found by
    the anchor's own skin, so a guitar held across the body at night is no drift, and blue
    eyes in a park (where the grass is green) are."""
    studio.create_character("Mia", prompt="a girl with orange hair and green eyes")
    session = studio.start_session("mia")
    night = studio.shoot_until_on_model(
        session.plan(pose="playing guitar", scene="city street at night"),
        checker="palette",
        takes=1,
    )
    assert night.passed, night.takes[0].check
    park = studio.shoot_until_on_model(
        session.plan(pose="playing guitar", scene="park", params={"drift": {"eye_color": "blue"}}),
        checker="palette",
        takes=1,
    )
    check = park.takes[0].check
    assert check is not None and not park.passed
    assert [t["trait"] for t in check.traits if t["verdict"] == "drifted"] == ["eye_color"]
