"""The three real routes end to end, through the studio, against the local OpenAI-compatible
server: what the server received, what the store recorded, and how faults end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from PIL import Image as PILImage

from fakeopenai import FakeOpenAI
from onmodel.blobs import sha256_file
from onmodel.errors import BudgetError, GenerationError, RetiredModelError
from onmodel.sheet import ModelSheet
from onmodel.studio import Studio

KEY = "sk-test-never-store-me-0123456789"
SHEET = ModelSheet(hair_color="#d22b2b", eye_color="#2e8b57", must_keep=["star hair clip"])


@pytest.fixture
def api(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "2")
    monkeypatch.setenv("ONMODEL_OPENAI_TIMEOUT", "5")
    return fake_openai


def no_key_anywhere(home: Path) -> None:
    for path in home.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_images_route_anchor_and_three_shots(studio: Studio, api: FakeOpenAI) -> None:
    character = studio.create_character("Rin", prompt="a girl with red hair", sheet=SHEET)
    session = studio.start_session(character, params={"size": "1024x1536", "quality": "low"})
    assert session.provider == "openai-images" and session.model == "gpt-image-2"
    shots = [
        session.shot(expression="crying"),
        session.shot(pose="playing guitar"),
        session.shot(action="taking a selfie with a dog", scene="park"),
    ]
    api.assert_no_rejections()
    generate = api.requests_to("images/generations")
    edits = api.requests_to("images/edits")
    assert len(generate) == 1 and len(edits) == 3
    anchor = studio.character("rin").anchor
    assert anchor is not None
    assert generate[0].json["model"] == "gpt-image-2"
    assert "Plain clean white background" in generate[0].json["prompt"]
    anchor_bytes = anchor.read_bytes()
    # anchor first on every edit, then the parent once it differs from the anchor
    assert [f.data for f in edits[0].images] == [anchor_bytes]
    assert [f.data for f in edits[1].images] == [anchor_bytes, shots[0].read_bytes()]
    assert [f.data for f in edits[2].images] == [anchor_bytes, shots[1].read_bytes()]
    for request, shot in zip(edits, shots, strict=True):
        fields = request.fields
        assert fields["model"] == "gpt-image-2"
        assert fields["prompt"] == shot.prompt
        assert fields["size"] == "1024x1536" and fields["quality"] == "low"
        assert "input_fidelity" not in fields and "response_format" not in fields
        assert all(f.content_type == "image/png" for f in request.images)
    for shot in shots:
        assert shot.succeeded and shot.row.usage and shot.row.usage["total_tokens"] > 0
        assert shot.row.returned["size"] == "1024x1536"
        assert shot.row.cost_usd is not None and float(shot.row.cost_usd) > 0
        assert shot.path is not None and sha256_file(shot.path) == shot.sha256
        assert shot.revised_prompt is None  # GPT image models return none
    no_key_anywhere(studio.paths.home)


def _studio_day(monkeypatch: pytest.MonkeyPatch, day: date) -> None:
    """Pin the day the studio checks shutdown dates against, so a test outlives the dates."""

    class Day(date):
        @classmethod
        def today(cls) -> Day:
            return cls(day.year, day.month, day.day)

    monkeypatch.setattr("onmodel.studio.planning.date", Day)


def test_input_fidelity_high_only_on_models_that_take_it(
    studio: Studio, api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gpt-image-1.5, the last model that took input_fidelity=high, shut down on 2026-12-01:
    # the day before, it was still used and warned about; from that day on it is refused.
    _studio_day(monkeypatch, date(2026, 11, 30))
    studio.create_character("Rin", prompt="a girl", sheet=SHEET)
    session = studio.start_session("rin", model="gpt-image-1.5")
    plan = session.plan(pose="waving")
    assert any("2026-12-01" in w for w in plan.warnings)
    session.shot(pose="waving")
    (edit,) = api.requests_to("images/edits")
    assert edit.fields["input_fidelity"] == "high"
    api.assert_no_rejections()

    _studio_day(monkeypatch, date(2026, 12, 1))
    with pytest.raises(RetiredModelError, match="shut down on 2026-12-01; use gpt-image-2"):
        session.shot(pose="waving again")
    assert len(api.requests_to("images/edits")) == 1


def test_extra_references_follow_anchor_and_parent(
    studio: Studio, api: FakeOpenAI, tmp_path: Path
) -> None:
    studio.create_character("Rin", prompt="a girl", sheet=SHEET)
    session = studio.start_session("rin")
    first = session.shot(expression="crying")
    style = tmp_path / "style.png"
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64), (1, 2, 3)).save(buffer, "PNG")
    style.write_bytes(buffer.getvalue())
    second = session.shot(pose="waving", refs=[style])
    edit = api.requests_to("images/edits")[-1]
    assert [f.data for f in edit.images][1:] == [first.read_bytes(), style.read_bytes()]
    assert [r.role for r in second.references] == ["anchor", "parent", "extra"]


def test_responses_route_continues_the_conversation(studio: Studio, api: FakeOpenAI) -> None:
    character = studio.create_character(
        "Rin", prompt="a girl", sheet=SHEET, provider="openai-images"
    )
    session = studio.start_session(character, provider="openai-responses")
    one = session.shot(expression="crying")
    two = session.shot(pose="playing guitar")
    three = session.shot(outfit="sportswear", from_image=one.id)
    api.assert_no_rejections()
    calls = api.requests_to("responses")
    assert len(calls) == 3
    first, second, branch = (c.json for c in calls)
    assert "keep one character" in first["instructions"] and "Rin" in first["instructions"]
    assert first.get("previous_response_id") is None
    contents = first["input"][0]["content"]
    assert any(c["type"] == "input_image" for c in contents)
    assert second["previous_response_id"] == one.row.response_id
    assert not any(c["type"] == "input_image" for c in second["input"][0]["content"])
    assert branch["previous_response_id"] == one.row.response_id  # the branch's parent, not two
    assert first["tools"][0]["type"] == "image_generation"
    assert first["tools"][0]["model"] == "gpt-image-2"
    for image in (one, two, three):
        assert image.gen_id is not None and image.gen_id.startswith("ig_")
        assert image.row.response_id is not None and image.row.response_id.startswith("resp_")
        assert image.revised_prompt
    assert studio.session(session.id).row.last_response_id == three.row.response_id


def test_chatgpt_route_prints_messages_and_attach_completes(studio: Studio, tmp_path: Path) -> None:
    picture = tmp_path / "anchor.png"
    buffer = io.BytesIO()
    PILImage.new("RGB", (40, 40), (200, 0, 0)).save(buffer, "PNG")
    picture.write_bytes(buffer.getvalue())
    studio.import_character("Kai", picture, prompt="a boy", gen_id="5EutQh3bm4uwHr4F")
    session = studio.start_session("kai", provider="chatgpt")
    pending = session.shot(expression="crying")
    assert pending.status == "pending" and len(pending.messages) == 2
    primer, message = pending.messages
    assert "core goal is to keep one character" in primer and "5EutQh3bm4uwHr4F" in primer
    assert "5EutQh3bm4uwHr4F" in message and "crying" in message
    saved = tmp_path / "saved.png"
    buffer = io.BytesIO()
    PILImage.new("RGB", (40, 40), (0, 0, 200)).save(buffer, "PNG")
    saved.write_bytes(buffer.getvalue())
    done = studio.attach(pending.id, saved, gen_id="AbCdEf123")
    assert done.succeeded and done.gen_id == "AbCdEf123"
    assert done.read_bytes() == saved.read_bytes()
    assert session.head is not None and session.head.id == done.id
    later = session.shot(pose="waving")
    assert len(later.messages) == 1 and "waving" in later.messages[0]


def test_rate_limit_is_retried_and_recorded_once(studio: Studio, api: FakeOpenAI) -> None:
    studio.create_character("Rin", prompt="a girl", sheet=SHEET)
    session = studio.start_session("rin")
    api.fail_next("images/edits", "rate_limit", retry_after=0.1)
    shot = session.shot(pose="waving")
    assert shot.succeeded
    edits = api.requests_to("images/edits")
    assert [r.retry_count for r in edits] == [0, 1]
    assert len(session.images()) == 1


@pytest.mark.parametrize(
    ("kind", "error_type", "attempts"),
    [
        ("insufficient_quota", "quota", 1),
        ("moderation", "moderation", 1),
        ("server_error", "server", 3),
        ("malformed", "bad_response", 1),
        ("auth", "auth", 1),
    ],
)
def test_faults_end_as_recorded_failures(
    studio: Studio, api: FakeOpenAI, kind: str, error_type: str, attempts: int
) -> None:
    studio.create_character("Rin", prompt="a girl", sheet=SHEET)
    session = studio.start_session("rin")
    api.fail_next("images/edits", kind, times=None)  # type: ignore[arg-type]
    with pytest.raises(GenerationError) as caught:
        session.shot(expression="crying")
    assert caught.value.image_id is not None
    # the library says whether a retry can help; wording the advice is the CLI's job
    assert caught.value.retryable is (error_type != "quota")
    assert "onmodel" not in str(caught.value)
    failed = studio.image(caught.value.image_id)
    assert failed.status == "failed" and failed.row.error_type == error_type
    assert failed.row.error_message and KEY not in failed.row.error_message
    assert failed.prompt and "Expression: crying" in failed.prompt
    assert len(api.requests_to("images/edits")) == attempts
    if kind == "moderation":
        assert failed.row.error_code == "moderation_blocked"
        assert failed.row.error_categories == ["sexual"]
    head = studio.session(session.id).row.head_image_id
    assert head == studio.character("rin").row.anchor_image_id  # the head did not move
    no_key_anywhere(studio.paths.home)


def test_timeout_is_a_recorded_failure(
    studio: Studio, api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    studio.create_character("Rin", prompt="a girl", sheet=SHEET)
    session = studio.start_session("rin")
    monkeypatch.setenv("ONMODEL_OPENAI_TIMEOUT", "0.5")
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    api.fail_next("images/edits", "timeout", delay=2)
    with pytest.raises(GenerationError) as caught:
        session.shot(pose="waving")
    assert caught.value.image_id is not None
    assert studio.image(caught.value.image_id).row.error_type == "timeout"


def test_retry_makes_a_new_node_linked_to_the_failed_one(studio: Studio, api: FakeOpenAI) -> None:
    studio.create_character("Rin", prompt="a girl", sheet=SHEET)
    session = studio.start_session("rin")
    first = session.shot(expression="crying")
    api.fail_next("images/edits", "moderation")
    with pytest.raises(GenerationError) as caught:
        session.shot(pose="playing guitar")
    assert caught.value.image_id is not None
    again = studio.retry(caught.value.image_id)
    assert again.succeeded and again.row.retry_of_id == caught.value.image_id
    assert again.row.parent_id == first.id
    assert again.request.pose == "playing guitar"
    assert studio.image(caught.value.image_id).status == "failed"  # history kept


def test_max_cost_refuses_before_any_request(studio: Studio, api: FakeOpenAI) -> None:
    studio.create_character("Rin", prompt="a girl", sheet=SHEET)
    session = studio.start_session("rin", params={"quality": "high"})
    before = len(api.requests)
    with pytest.raises(BudgetError, match="over --max-cost"):
        session.shot(pose="waving", max_cost=0.001)
    assert len(api.requests) == before
    assert session.images() == []
    cheap = session.shot(pose="waving", max_cost=10)
    assert cheap.succeeded


def test_retired_models_are_refused_with_date_and_replacement(studio: Studio) -> None:
    studio.create_character("Rin", prompt="a girl")
    with pytest.raises(RetiredModelError, match=r"2026-05-12"):
        studio.start_session("rin", model="dall-e-3")
    with pytest.raises(RetiredModelError, match=r"2026-10-23.*gpt-image-2\.5"):
        studio.start_session("rin", model="gpt-image-1")


def test_cost_report_sums_known_costs(studio: Studio, api: FakeOpenAI) -> None:
    studio.create_character("Rin", prompt="a girl", sheet=SHEET)
    session = studio.start_session("rin", params={"quality": "low"})
    shots = [session.shot(pose="waving"), session.shot(pose="jumping")]
    report = studio.cost(session)
    assert report.images == 2 and report.unknown == 0
    assert float(report.total) == pytest.approx(sum(float(s.row.cost_usd or 0) for s in shots))


def test_cli_failure_is_one_line_exit_1_and_names_retry(api: FakeOpenAI, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()}
    env.update(ONMODEL_HOME=str(tmp_path / "cli"), COLUMNS="200")

    def onmodel(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "onmodel", *args], capture_output=True, text=True, env=env
        )

    assert onmodel("character", "new", "Rin", "--prompt", "a girl").returncode == 0
    assert onmodel("session", "new", "rin").returncode == 0
    api.fail_next("images/edits", "moderation")
    failed = onmodel("shot", "--expression", "crying")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert "content policy" in failed.stderr or "moderation" in failed.stderr
    assert "onmodel retry" in failed.stderr
    image_id = json.loads(onmodel("session", "show", "--json").stdout)["images"][0]["id"]
    retried = onmodel("retry", str(image_id), "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["retry_of_id"] == image_id
    cost = json.loads(onmodel("cost", "--json").stdout)
    assert cost["images"] == 2  # the failed attempt is counted, its cost unknown or zero
    retired = onmodel("session", "new", "rin", "--model", "dall-e-3")
    assert retired.returncode == 2 and "2026-05-12" in retired.stderr
    dry = onmodel("shot", "--pose", "waving", "--dry-run", "--size", "1000x1000")
    assert dry.returncode == 2 and "divisible by 16" in dry.stderr
    no_key_anywhere(tmp_path / "cli")
