"""A shot of several is checked per member (issue 15, "Checks"): each figure against its own
anchor and sheet, a row per member; the shot is on model only when every member is, and
scores its lowest member; the set is not checked. The palette finds each member in the
picture, from the preview's figures and from pixels alone; the judge sees every anchor."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cli_inprocess import run_cli
from fakeopenai import RESPONSES, FakeOpenAI
from onmodel.checkers.base import CheckOutcome, CheckSubject
from onmodel.checkers.judge import judged_traits
from onmodel.checkers.palette import PaletteChecker
from onmodel.checkview import badge, check_dict, drifted_names, members_of
from onmodel.demo import BEDROOM_SHEET, DEMO_SHEET, MAX_SHEET, RIN_SHEET
from onmodel.providers.base import GenerationRequest
from onmodel.providers.preview import drift_params, render
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.store import checks as check_store
from onmodel.store.checks import ShotCheck
from onmodel.studio import Studio
from onmodel.vision.subject import smooth_areas

MIA, RIN, MAX, BEDROOM = DEMO_SHEET, RIN_SHEET, MAX_SHEET, BEDROOM_SHEET
BLUE_HAIR = "#3b5ba5"


@pytest.fixture
def cast(studio: Studio) -> Studio:
    """Mia (the lead), Rin and the bedroom, each with an anchor, in one session."""
    studio.create_character("Mia", prompt="a girl with orange hair", sheet=MIA)
    studio.create_character("Rin", prompt="a boy with black hair", sheet=RIN)
    studio.create_character("Bedroom", prompt="a cosy bedroom", kind="set", sheet=BEDROOM)
    studio.start_session("mia", with_=["rin", "bedroom"])
    return studio


def ids(studio: Studio, *names: str) -> list[int]:
    return [studio.character(name).id for name in names]


def test_a_shot_of_two_in_a_set_is_checked_per_member_and_the_set_is_not(cast: Studio) -> None:
    shot = cast.session().shot(action="playing guitar", with_=["rin"], set_="bedroom")
    record = cast.check(shot, "palette")

    assert isinstance(record, ShotCheck) and record.passed is True
    assert [m.character_id for m in record.members] == ids(cast, "mia", "rin")
    assert [m.returned["member"] for m in record.members] == ["Mia", "Rin"]
    assert all(m.passed for m in record.members)
    assert record.score == min(m.score or 0 for m in record.members)
    rows = cast.checks_of([shot.id])[shot.id]
    assert sorted(r.character_id or 0 for r in rows) == sorted(ids(cast, "mia", "rin"))
    assert [each.name for each in cast.checks.not_checked(shot)] == ["Bedroom"]
    # one record per image for the badges, the shot's: every member is on model
    latest = cast.latest_checks([shot.id])[shot.id]
    assert badge(latest).text == f"on model {record.score}"
    assert badge(latest).title == " · ".join(
        f"{m.returned['member']} on model {m.score}" for m in record.members
    )


def test_one_members_hair_recoloured_drifts_that_member_and_the_shot(cast: Studio) -> None:
    shot = cast.session().shot(
        action="playing guitar",
        with_=["rin"],
        set_="bedroom",
        params=drift_params(hair_color=BLUE_HAIR),
    )  # the preview draws a cast's drift on its first figure: Mia
    record = cast.check(shot, "palette")

    mia, rin = members_of(record)
    assert mia.passed is False and rin.passed is True
    assert drifted_names(mia) == ["hair colour"]
    assert record.passed is False and record.score == mia.score
    assert badge(record).text == f"Mia drifted {mia.score}: hair colour"
    latest = cast.latest_checks([shot.id])[shot.id]
    assert latest.character_id == mia.character_id and latest.passed is False


def test_a_shot_of_rin_alone_is_checked_against_rin_not_the_lead(cast: Studio) -> None:
    session = cast.session()
    on_model = cast.check(session.shot(pose="waving", cast=["rin"]), "palette")
    drifted = cast.check(
        session.shot(pose="waving", cast=["rin"], params=drift_params(hair_color=BLUE_HAIR)),
        "palette",
    )

    (rin,) = members_of(on_model)
    # against Mia's anchor, Rin's black hair and blue eyes would both be drift
    assert rin.character_id == cast.character("rin").id and on_model.passed is True
    assert drifted.passed is False
    assert drifted_names(drifted) == ["hair colour"]
    # a shot of the lead alone reads as it always has: no member named
    lead = cast.check(session.shot(pose="waving"), "palette")
    assert lead.character_id is None and not isinstance(lead, ShotCheck)
    assert "members" not in check_dict(lead)


def test_check_prints_and_answers_each_member(cast: Studio, isolated_home: Path) -> None:
    session = cast.session()
    good = session.shot(action="reading", with_=["rin"], set_="bedroom")
    bad = session.shot(
        action="reading", with_=["rin"], set_="bedroom", params=drift_params(hair_color=BLUE_HAIR)
    )

    shown = run_cli(isolated_home, "check", str(good.id), str(bad.id))
    answer = run_cli(isolated_home, "check", str(good.id), str(bad.id), "--json")

    assert shown.code == 1 and answer.code == 1  # one shot has a member off model
    lines = shown.stdout.splitlines()
    good_line = next(line for line in lines if line.startswith(f"#{good.id} "))
    bad_line = next(line for line in lines if line.startswith(f"#{bad.id} "))
    assert "Mia on model" in good_line and " · Rin on model" in good_line
    assert "Mia drifted" in bad_line and "hair colour" in bad_line
    assert bad_line.endswith(" · Rin on model 100")
    assert any("not checked: Bedroom (set)" in line for line in lines)
    assert "2 checked with palette: 1 on model, 1 drifted" in shown.stdout
    checks = json.loads(answer.stdout)["checks"]
    assert [c["passed"] for c in checks] == [True, False]
    members = checks[1]["members"]
    assert [(m["member"], m["passed"]) for m in members] == [("Mia", False), ("Rin", True)]
    assert "hair colour" in members[0]["drifted"] and members[1]["drifted"] == []
    assert checks[1]["drifted"] == members[0]["drifted"]  # the shot reads as its worst member
    assert checks[1]["not_checked"] == [
        {"character_id": cast.character("bedroom").id, "name": "Bedroom", "kind": "set"}
    ]


def test_a_retake_picks_the_take_where_both_are_on_model(cast: Studio) -> None:
    plan = cast.session().plan(
        action="dancing",
        with_=["rin"],
        set_="bedroom",
        params=drift_params(hair_color=BLUE_HAIR, takes=[1]),
    )
    report = cast.shoot_until_on_model(plan, checker="palette", takes=3)

    assert len(report.takes) == 2 and report.passed
    first, second = (take.check for take in report.takes)
    assert first is not None and second is not None
    assert [m.passed for m in members_of(first)] == [False, True]
    assert [m.passed for m in members_of(second)] == [True, True]
    assert report.pick is not None and report.pick.id == report.takes[1].image.id
    assert cast.session().head is not None and cast.session().head.id == report.pick.id


def test_the_rounds_worst_member_stands_for_the_shot_in_batch_settlement(cast: Studio) -> None:
    """A batch reads the newest round of each take's checks: a member drifted in an older
    round and on model in the newest is on model."""
    shot = cast.session().shot(action="reading", with_=["rin"], set_="bedroom")
    cast.check(shot, "palette", min_score=101)  # nobody can pass: both off model
    cast.check(shot, "palette")
    rows = cast.checks_of([shot.id])[shot.id]
    newest = check_store.newest_round(rows)

    assert len(rows) == 4 and [r.id for r in newest] == [r.id for r in rows[2:]]
    assert check_store.shot_check(newest).passed is True


# ------------------------------------------------------------------ from pixels alone


def figure(sheet: ModelSheet, name: str) -> tuple[Image.Image, Image.Image]:
    """A preview anchor of ``sheet`` and the mask of its figure (its background and caption
    left out), to paste into a scene."""
    anchor = render(
        GenerationRequest(
            kind="anchor",
            prompt="",
            model="preview",
            params={},
            sheet=sheet,
            request=ShotRequest(),
            character_name=name,
        ),
        (512, 512),
    )
    rgb = np.asarray(anchor.convert("RGB"))
    areas, _ = smooth_areas(rgb)
    mask = areas != areas[2, 2]
    mask[int(0.85 * rgb.shape[0]) :, :] = False  # the caption
    return anchor, Image.fromarray((mask * 255).astype("uint8"))


def scene(folder: Path, figures: list[tuple[Image.Image, Image.Image]], name: str) -> Path:
    """Figures side by side in a room: a wall, a floor and a window, no boxes given."""
    canvas = Image.new("RGB", (320 * len(figures) + 40, 560), (222, 205, 180))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 430, canvas.width, 560), fill=(150, 100, 70))
    draw.rectangle((canvas.width - 150, 50, canvas.width - 40, 170), fill=(180, 210, 240))
    for index, (picture, mask) in enumerate(figures):
        crop = (106, 0, 406, 512)
        canvas.paste(picture.crop(crop), (20 + 320 * index, 40), mask.crop(crop))
    path = folder / f"{name}.png"
    canvas.save(path)
    return path


def test_the_palette_finds_each_member_from_pixels_alone(tmp_path: Path) -> None:
    mia_anchor, mia_mask = figure(MIA, "Mia")
    rin_anchor, _ = figure(RIN, "Rin")
    blue_rin = figure(RIN.model_copy(update={"hair_color": BLUE_HAIR}), "Rin")
    for name, picture in (("mia", mia_anchor), ("rin", rin_anchor)):
        picture.save(tmp_path / f"{name}-anchor.png")
    # Rin stands left of Mia, though the cast names Mia first, and his hair is blue
    shot = scene(tmp_path, [blue_rin, (mia_anchor, mia_mask)], "shot")

    def subject(name: str, sheet: ModelSheet, member: int) -> CheckSubject:
        return CheckSubject(
            image=shot,
            image_mime="image/png",
            anchor=tmp_path / f"{name}-anchor.png",
            anchor_mime="image/png",
            sheet=sheet,
            request=ShotRequest(),
            character_name=name.title(),
            character_id=member,
        )

    answers = PaletteChecker().check_cast([subject("mia", MIA, 1), subject("rin", RIN, 2)])
    mia, rin = answers
    assert isinstance(mia, CheckOutcome) and isinstance(rin, CheckOutcome)
    assert mia.drifted == [] and mia.score >= 80
    assert [t.trait for t in rin.drifted] == ["hair_color", "palette: #1a1a1a"]

    # a member the picture does not show is not found: drifted, never a crash
    alone = scene(tmp_path, [(mia_anchor, mia_mask)], "alone")
    _, missing = PaletteChecker().check_cast(
        [
            CheckSubject(**{**vars(subject("mia", MIA, 1)), "image": alone}),
            CheckSubject(**{**vars(subject("rin", RIN, 2)), "image": alone}),
        ]
    )
    assert isinstance(missing, CheckOutcome) and missing.drifted and missing.score < 80


def test_the_palette_finds_three_figures_in_a_furnished_set_from_pixels_alone(
    cast: Studio,
) -> None:
    """The preview's bedroom draws its bed, window and desk behind the figures, pieces of
    them; without the boxes the preview gives, each member is still found, the dog too."""
    cast.create_character("Max", prompt="a small brown dog", kind="creature", sheet=MAX)
    cast.add_to_cast(cast.session(), ["max"])
    shot = cast.session().shot(action="reading", with_=["rin", "max"], set_="bedroom")
    subjects = [replace(subject, box=None) for subject in cast.checks.subjects(shot)]
    answers = PaletteChecker().check_cast(subjects)

    assert [s.character_name for s in subjects] == ["Mia", "Rin", "Max"]
    assert all(isinstance(a, CheckOutcome) and a.drifted == [] for a in answers)


# ------------------------------------------------------------------ the judge

KEY = "sk-judge-test-0123456789abcdef"


def member_answer(traits: list[str], drifted: str = "", score: int = 92) -> dict[str, Any]:
    return {
        "traits": {
            key: {"verdict": "drifted" if key == drifted else "same", "note": key} for key in traits
        },
        "score": score,
        "summary": f"{drifted} drifted" if drifted else "on model",
    }


def test_the_judge_sees_every_anchor_then_the_shot_and_records_a_row_per_member(
    cast: Studio, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shot = cast.session().shot(action="playing guitar", with_=["rin"], set_="bedroom")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    request = cast.checks.subject(shot).request
    mia_traits, rin_traits = (
        [trait.key for trait in judged_traits(sheet, request)] for sheet in (MIA, RIN)
    )
    fake_openai.answer_next(
        {
            "members": {
                "member_1": member_answer(mia_traits),
                "member_2": member_answer(rin_traits, drifted="hair_color", score=61),
            }
        }
    )
    judge = cast.checks.checker("judge")
    cast.paths.prices_file.write_text(
        "models:\n  gpt-6-luna:\n    input_image_tokens: 3000\n", encoding="utf-8"
    )  # what an image costs, so a check's most can be told
    alone = judge.estimate_max_cost(cast.checks.subject(shot))
    estimate = cast.checks.estimate(judge, shot)
    record = cast.check(shot, "judge")

    fake_openai.assert_no_rejections()
    (sent,) = fake_openai.requests_to(RESPONSES)
    anchors = [cast.image(cast.character(n).row.anchor_image_id) for n in ("mia", "rin")]  # type: ignore[arg-type]
    expected = [a.path for a in anchors] + [shot.path]
    assert sent.input_image_urls == [
        f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"
        for path in expected
        if path is not None
    ]
    schema = sent.text_format["schema"] if sent.text_format else {}
    assert schema["properties"]["members"]["required"] == ["member_1", "member_2"]
    prompt = sent.json["input"][0]["content"][0]["text"]
    assert "Image 1 is the anchor of Mia" in prompt and "Image 2 is the anchor of Rin" in prompt

    mia, rin = members_of(record)
    assert (mia.passed, rin.passed, record.passed) == (True, False, False)
    assert record.score == 61 and badge(record).text == "Rin drifted 61: hair colour"
    # one call, paid once: on the first member's row, the shot's check costs all of it
    assert mia.cost_usd is not None and Decimal(mia.cost_usd) > 0 and rin.cost_usd == "0"
    assert record.cost_usd == mia.cost_usd
    # the estimate covers the one call with every anchor: more than a check of one member
    assert estimate is not None and alone is not None and estimate > alone
    assert estimate >= Decimal(mia.cost_usd)
    assert mia.returned["response_id"] == rin.returned["response_id"]
