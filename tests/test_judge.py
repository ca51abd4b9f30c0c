"""The ``judge`` checker against the local fake server, through ``Studio.check`` (issue 14).

What goes over the wire matters here (both images, anchor first, and a strict schema listing
the sheet's traits), and so does what is recorded: the per-trait verdicts and score of an
answer, and a refusal or a malformed answer as a failed check with the usage paid for.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fakeopenai import RESPONSES, FakeOpenAI
from onmodel.checkers.base import CheckerError, TraitResult, Verdict
from onmodel.checkers.judge import DEFAULT_JUDGE_MODEL, JudgeChecker, judged_traits
from onmodel.errors import BudgetError, MissingKeyError
from onmodel.sheet import ModelSheet, ShotRequest
from onmodel.store import checks as check_store
from onmodel.store.records import CheckRecord
from onmodel.studio import Studio

UNSEEN = ("avoid", "layout", "fixed_objects", "lighting")  # sheet fields no judge reads

KEY = "sk-judge-test-0123456789abcdef"
SHEET = ModelSheet(
    hair="short bob",
    hair_color="#c9642b",
    eye_color="#2e8b57",
    outfit="yellow raincoat",
    outfit_colors=["#ffd700"],
    must_keep=["hair clip"],
)
KEYS = ["hair", "hair_color", "eye_color", "outfit", "outfit_colors_1", "must_keep_1"]


@pytest.fixture
def judged(studio: Studio, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> int:
    """A shot made offline (preview), then the key and base URL of the fake server set."""
    studio.create_character("Mia", prompt="a cheerful girl", sheet=SHEET)
    shot_id = studio.start_session("mia").shot(pose="waving", scene="beach at night").id
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    return shot_id


def answer(**verdicts: str) -> dict[str, Any]:
    """A judgement: every trait ``same`` unless given, score 85."""
    return {
        "traits": {
            key: {"verdict": verdicts.get(key, "same"), "note": f"{key} ok"} for key in KEYS
        },
        "score": 85,
        "summary": "eyes drifted a little",
    }


def data_url(path: Path | None) -> str:
    assert path is not None
    return f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"


def stored_text(record: CheckRecord) -> str:
    return json.dumps(vars(record), default=str)


def test_the_request_carries_anchor_then_shot_and_a_strict_schema_of_the_sheets_traits(
    studio: Studio, judged: int, fake_openai: FakeOpenAI
) -> None:
    fake_openai.answer_next(answer(eye_color="drifted"))
    record = studio.check(judged, "judge", min_score=80)

    fake_openai.assert_no_rejections()
    (sent,) = fake_openai.requests_to(RESPONSES)
    anchor = studio.image(studio.character("mia").row.anchor_image_id)  # type: ignore[arg-type]
    assert sent.input_image_urls == [data_url(anchor.path), data_url(studio.image(judged).path)]
    assert sent.json["model"] == DEFAULT_JUDGE_MODEL and sent.json["store"] is False
    text_format = sent.text_format
    assert text_format is not None
    assert (text_format["type"], text_format["strict"]) == ("json_schema", True)
    schema = text_format["schema"]
    assert schema["required"] == ["traits", "score", "summary"]
    traits = schema["properties"]["traits"]
    assert traits["required"] == KEYS and traits["additionalProperties"] is False
    verdict = traits["properties"]["eye_color"]["properties"]["verdict"]
    assert verdict["enum"] == ["same", "drifted", "not visible"]
    prompt = sent.json["input"][0]["content"][0]["text"]
    assert "eye_color: eye color should be #2e8b57" in prompt and "beach at night" in prompt

    # 85 reaches the pass mark, but a trait the judge calls drifted is not on model
    assert (record.status, record.score, record.passed) == ("succeeded", 85, False)
    results = [TraitResult.from_dict(t) for t in record.traits]
    assert [r.trait for r in results] == [
        "hair",
        "hair_color",
        "eye_color",
        "outfit",
        "outfit_colors: #ffd700",
        "must_keep: hair clip",
    ]
    assert results[2].verdict == Verdict.DRIFTED and results[2].note == "eye_color ok"
    assert record.summary == "eyes drifted a little" and record.model == DEFAULT_JUDGE_MODEL
    assert record.usage is not None and record.usage["input_tokens"] > 0
    assert record.cost_usd is not None and Decimal(record.cost_usd) > 0
    assert record.returned["response_id"].startswith("resp_")
    assert record.returned["template"] == "prompts/judge.j2"
    assert KEY not in stored_text(record)


def test_traits_a_request_changes_on_purpose_are_changed_by_request(
    studio: Studio, judged: int, fake_openai: FakeOpenAI
) -> None:
    shot_id = studio.start_session("mia").shot(outfit="red tracksuit").id
    fake_openai.answer_next(answer(outfit="drifted", outfit_colors_1="drifted"))
    record = studio.check(shot_id, "judge")

    prompt = fake_openai.requests_to(RESPONSES)[0].json["input"][0]["content"][0]["text"]
    assert "outfit: red tracksuit" in prompt and "changes this on purpose" in prompt
    verdicts = {t["trait"]: t["verdict"] for t in record.traits}
    assert verdicts["outfit"] == verdicts["outfit_colors: #ffd700"] == "changed by request"
    assert verdicts["hair"] == "same"


@pytest.mark.parametrize(
    ("fault", "scripted", "kind"),
    [
        ("refusal", None, "refusal"),
        ("malformed", None, "malformed"),
        ("incomplete", None, "incomplete"),
        (None, {"traits": {}, "score": 50, "summary": "x"}, "schema_mismatch"),
        (None, {**answer(), "score": 250}, "schema_mismatch"),
    ],
)
def test_an_answer_that_is_no_judgement_is_a_failed_check_with_its_usage_and_cost(
    studio: Studio,
    judged: int,
    fake_openai: FakeOpenAI,
    fault: Any,
    scripted: dict[str, Any] | None,
    kind: str,
) -> None:
    if fault is not None:
        fake_openai.fail_next("responses", fault)
    if scripted is not None:
        fake_openai.answer_next(scripted)
    record = studio.check(judged, "judge")

    assert (record.status, record.error_type, record.score) == ("failed", kind, None)
    assert record.usage is not None and record.usage["output_tokens"] > 0
    assert record.cost_usd is not None and Decimal(record.cost_usd) > 0
    assert record.returned["response_id"].startswith("resp_")
    assert KEY not in stored_text(record)
    message = record.error_message or ""
    assert "\n" not in message and "pydantic" not in message and "_Judgement" not in message
    if scripted is not None and scripted.get("score") == 250:
        assert "score: Input should be less than or equal to 100" in message


def test_an_api_error_is_a_failed_check_that_never_quotes_the_key(
    studio: Studio, judged: int, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next("responses", "auth")
    record = studio.check(judged, "judge")

    assert (record.status, record.error_type) == ("failed", "auth")
    assert "OPENAI_API_KEY" in (record.error_message or "")
    assert record.cost_usd == "0"  # refused before the model looked: not billed, not unknown
    assert KEY not in stored_text(record)
    assert KEY[-4:] not in (record.error_message or "")


def test_without_a_key_the_check_is_refused_before_any_row_is_written(
    studio: Studio, judged: int, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(MissingKeyError, match="OPENAI_API_KEY"):
        studio.check(judged, "judge")
    assert check_store.checks_of(studio.engine, [judged]) == {}
    assert fake_openai.requests == []


def test_max_cost_refuses_an_unknown_estimate_and_allows_a_priced_one(
    studio: Studio, judged: int, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(BudgetError, match=r"cannot be estimated .*input_image_tokens"):
        studio.check(judged, "judge", max_cost=Decimal("1"))
    assert check_store.checks_of(studio.engine, [judged]) == {}

    # once the user says what an image costs, the estimate is known: a price override
    studio.paths.prices_file.write_text(
        "models:\n  gpt-6-luna:\n    input_image_tokens: 3000\n", encoding="utf-8"
    )
    with pytest.raises(BudgetError, match="up to"):
        studio.check(judged, "judge", max_cost=Decimal("0.001"))
    assert studio.check(judged, "judge", max_cost=Decimal("0.05")).status == "succeeded"


def test_describe_reads_a_model_sheet_with_hex_colours_and_keeps_what_it_cannot_see(
    studio: Studio, judged: int, fake_openai: FakeOpenAI
) -> None:
    proposed = {
        "style": "flat cel-shaded cartoon",
        "species": "girl",
        "hair": "short bob with a fringe",
        "hair_color": "#d2691e",
        "eye_color": "",
        "skin_color": "#f1c27d",
        "build": "small, round-faced",
        "outfit": "",
        "outfit_colors": ["#ffd700", "#1e6fd9"],
        "palette": ["#d2691e", "#ffd700"],
        "must_keep": ["hair clip"],
    }
    fake_openai.answer_next(proposed)
    current = SHEET.model_copy(update={"avoid": ["text"]})
    anchor = studio.image(studio.character("mia").row.anchor_image_id)  # type: ignore[arg-type]
    assert anchor.path is not None
    checker = studio.checks.checker("judge")
    sheet = checker.describe(anchor.path, "image/png", current=current, character_name="Mia")

    assert sheet.hair_color == "#d2691e" and sheet.outfit_colors == ["#ffd700", "#1e6fd9"]
    assert sheet.eye_color == "#2e8b57" and sheet.outfit == "yellow raincoat"  # kept
    assert sheet.avoid == ["text"]
    (sent,) = fake_openai.requests_to(RESPONSES)
    assert sent.input_image_urls == [data_url(anchor.path)]
    schema = sent.text_format["schema"]  # type: ignore[index]
    assert schema["properties"]["palette"]["items"]["pattern"] == "^#[0-9a-fA-F]{6}$"
    assert "avoid" not in schema["properties"]
    fake_openai.assert_no_rejections()


def test_a_describe_answer_with_a_colour_name_is_refused(
    studio: Studio, judged: int, fake_openai: FakeOpenAI
) -> None:
    anchor = studio.image(studio.character("mia").row.anchor_image_id)  # type: ignore[arg-type]
    assert anchor.path is not None
    bad: dict[str, Any] = {key: "" for key in ModelSheet.model_fields if key not in UNSEEN}
    bad.update(outfit_colors=["teal"], palette=[], must_keep=[])
    fake_openai.answer_next(bad)
    with pytest.raises(CheckerError, match="not a #rrggbb colour") as caught:
        studio.checks.checker("judge").describe(anchor.path, "image/png", current=SHEET)
    assert caught.value.kind == "schema_mismatch" and caught.value.usage is not None


def test_a_users_judge_template_of_the_same_name_is_the_prompt(
    studio: Studio, judged: int, fake_openai: FakeOpenAI
) -> None:
    own = studio.paths.templates / "prompts" / "judge.j2"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_text("Judge {{ character_name }}: {{ traits | map(attribute='key') | join(',') }}")
    fake_openai.answer_next(answer())
    record = studio.check(judged, "judge")

    prompt = fake_openai.requests_to(RESPONSES)[0].json["input"][0]["content"][0]["text"]
    assert prompt.strip() == "Judge Mia: " + ",".join(KEYS)
    assert record.status == "succeeded"


def test_every_trait_the_sheet_sets_is_judged_list_items_one_by_one() -> None:
    sheet = ModelSheet(style="anime", palette=["#111111", "#222222"], must_keep=["scar"])
    traits = judged_traits(sheet, ShotRequest(outfit="suit"))
    assert [(t.key, t.name, t.changed) for t in traits] == [
        ("style", "style", False),
        ("palette_1", "palette: #111111", False),
        ("palette_2", "palette: #222222", False),
        ("must_keep_1", "must_keep: scar", False),
    ]
    assert JudgeChecker().model == DEFAULT_JUDGE_MODEL
    assert JudgeChecker(model="gpt-6.1-terra").model == "gpt-6.1-terra"


def test_a_palette_colour_the_outfit_wears_changes_with_a_requested_outfit() -> None:
    sheet = ModelSheet(outfit_colors=["#F3E9D2"], palette=["#f3e9d2", "#f0a04b"])
    changed = {t.name: t.changed for t in judged_traits(sheet, ShotRequest(outfit="tracksuit"))}
    assert changed == {
        "outfit_colors: #F3E9D2": True,
        "palette: #f3e9d2": True,  # the hoodie's colour goes with the hoodie
        "palette: #f0a04b": False,  # the hair's stays
    }
    assert not any(t.changed for t in judged_traits(sheet, ShotRequest(pose="waving")))


def test_onmodel_judge_model_chooses_the_judges_model_for_every_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from onmodel.checkers.base import CheckerContext
    from onmodel.settings import Settings

    monkeypatch.setenv("ONMODEL_JUDGE_MODEL", "gpt-6.1-terra")
    assert JudgeChecker(CheckerContext(settings=Settings.from_environment())).model == (
        "gpt-6.1-terra"
    )
    assert JudgeChecker(model="gpt-6-astra").model == "gpt-6-astra"  # a caller's choice wins
