"""The gemini provider end to end: the real google-genai SDK against the local fake Gemini
API (tests/fakegemini.py), through the library and the CLI.

What a user would notice: the anchor is asked for in words alone; every shot shows the model
the anchors again, continues the chat with the earlier turns (pictures and thought signatures
sent back as the model's own), never pays twice for the parent; sizes become Gemini's aspect
ratios; costs come from the tokens Gemini reports; every failure is one line and a recorded
row with its kind; and the key never lands anywhere.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image as PILImage

from cli_inprocess import run_cli
from fakegemini import FakeGemini, b64decode
from onmodel.errors import GenerationError, UsageError, ValidationError
from onmodel.handles import Image
from onmodel.providers.base import ProviderError
from onmodel.providers.gemini import client as gemini_client
from onmodel.sheet import ModelSheet
from onmodel.studio import Studio

KEY = "AIzaSyTEST-never-store-me-0123456789"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        monkeypatch.setenv("ONMODEL_GEMINI_TIMEOUT", "10")
        # the SDK's own back-off, made tiny: tests assert attempts, never time
        monkeypatch.setattr(gemini_client, "RETRY_INITIAL_DELAY", 0.01)
        monkeypatch.setattr(gemini_client, "RETRY_MAX_DELAY", 0.02)
        monkeypatch.setattr(gemini_client, "RETRY_JITTER", 0.0)
        yield server
        assert not server.errors
        assert not server.rejected, [each.rejection for each in server.rejected]


def inline_images(parts: list[dict[str, object]]) -> list[bytes]:
    found = []
    for part in parts:
        inline = part.get("inlineData") or part.get("inline_data")
        if isinstance(inline, dict):
            found.append(b64decode(inline["data"]))
    return found


def anchor_of(studio: Studio, slug: str) -> Image:
    anchor = studio.character(slug).anchor
    assert anchor is not None
    return anchor


def mia(studio: Studio) -> None:
    studio.create_character("Mia", prompt="a girl with red hair", provider="gemini")


# --------------------------------------------------------------------------- anchors and chats


def test_an_anchor_is_asked_in_words_alone_and_priced_from_its_tokens(
    studio: Studio, api: FakeGemini
) -> None:
    mia(studio)
    (request,) = api.requests
    assert request.model == "gemini-3-pro-image"  # the provider's default model
    assert request.headers["x-goog-api-key"] == "present"
    assert request.history == [] and inline_images(request.message) == []
    anchor = studio.character("mia").anchor
    assert anchor is not None and anchor.succeeded
    assert request.message[-1] == {"text": anchor.prompt}
    assert anchor.returned["text"] == "Here is the picture."
    assert anchor.returned["finish_reason"] == "STOP"
    assert anchor.response_id and anchor.gen_id == anchor.response_id
    usage = anchor.usage
    assert usage is not None
    assert usage["output_tokens_details"] == {"image_tokens": 1120, "text_tokens": 6 + 40}
    # 1120 image tokens at $120/M, the thinking and text at $12/M, the prompt at $2/M
    prompt_tokens = usage["input_tokens"]
    expected = (Decimal(1120) * 120 + Decimal(46) * 12 + Decimal(prompt_tokens) * 2) / 1_000_000
    assert Decimal(str(anchor.cost_usd)) == expected


def test_shots_continue_the_chat_without_sending_the_parent_twice(
    studio: Studio, api: FakeGemini
) -> None:
    mia(studio)
    anchor = studio.character("mia").anchor
    assert anchor is not None
    session = studio.start_session("mia", provider="gemini")
    first = session.shot("waving")
    second = session.shot("jumping")
    third = session.shot("sitting")
    _, one, two, three = api.requests
    # the first shot starts a chat: the anchor as an image part, then the prompt
    assert one.history == [] and inline_images(one.message) == [anchor.read_bytes()]
    assert list(one.message[-1]) == ["text"] and one.message[-1]["text"] == first.prompt
    # the second sends the first turn back as history and the anchor again, not the parent
    assert inline_images(two.message) == [anchor.read_bytes()]
    user, model = two.history
    assert user == {"role": "user", "parts": [{"text": first.prompt}]}
    assert inline_images(model["parts"]) == [first.read_bytes()]
    image_part = next(p for p in model["parts"] if p.get("inlineData") or p.get("inline_data"))
    signature = image_part.get("thoughtSignature") or image_part.get("thought_signature")
    assert b64decode(signature) == b64decode(first.returned["parts"][-1]["thought_signature"])
    assert [p.get("text") for p in model["parts"] if "text" in p] == ["Here is the picture."]
    # the third: two turns of history, oldest first
    assert [inline_images(c["parts"]) for c in three.history if c["role"] == "model"] == [
        [first.read_bytes()],
        [second.read_bytes()],
    ]
    assert second.params["conversation_turns"] == [first.id]
    assert third.params["conversation_turns"] == [first.id, second.id]
    assert third.params["images"] == [{"role": "anchor", "sha256": anchor.sha256}]


def test_the_chat_resends_only_the_last_four_turns(studio: Studio, api: FakeGemini) -> None:
    mia(studio)
    session = studio.start_session("mia", provider="gemini")
    shots = [session.shot(f"pose {number}") for number in range(6)]
    last = api.requests[-1]
    models = [c for c in last.history if c["role"] == "model"]
    assert [inline_images(c["parts"]) for c in models] == [[s.read_bytes()] for s in shots[1:5]]


def test_a_branch_from_an_older_picture_continues_that_pictures_chat(
    studio: Studio, api: FakeGemini
) -> None:
    mia(studio)
    session = studio.start_session("mia", provider="gemini")
    first = session.shot("waving")
    session.shot("jumping")
    branch = session.shot("reading", from_image=first.id)
    request = api.requests[-1]
    assert [c["parts"][0]["text"] for c in request.history if c["role"] == "user"] == [first.prompt]
    assert first.read_bytes() not in inline_images(request.message)
    assert branch.params["conversation_turns"] == [first.id]


def test_a_cast_shot_sends_every_anchor_in_order_then_the_prompt(
    studio: Studio, api: FakeGemini
) -> None:
    mia(studio)
    studio.create_character("Rin", prompt="a boy with black hair", provider="gemini")
    studio.create_character(
        "Bedroom",
        prompt="Mia's bedroom",
        kind="set",
        provider="gemini",
        sheet=ModelSheet(palette=["#f3e5c0", "#5b7fa6"]),
    )
    session = studio.start_session("mia", provider="gemini", with_=["rin", "bedroom"])
    shot = session.shot("playing guitar together", with_=["rin"], set_="bedroom")
    request = api.requests[-1]
    anchors = [anchor_of(studio, slug).read_bytes() for slug in ("mia", "rin", "bedroom")]
    assert inline_images(request.message) == anchors
    assert request.message[-1] == {"text": shot.prompt}
    assert "image 1 is Mia; image 2 is Rin; image 3 is Bedroom, the place" in shot.prompt
    assert shot.params["conversation_cast"] == sorted(
        studio.character(s).id for s in ("mia", "rin", "bedroom")
    )


# --------------------------------------------------------------------------- sizes and costs


def test_a_size_becomes_an_aspect_ratio_and_a_size_class(studio: Studio, api: FakeGemini) -> None:
    mia(studio)
    session = studio.start_session("mia", provider="gemini", params={"size": "1376x768"})
    wide = session.shot("running")
    assert api.requests[-1].image_config == {"aspectRatio": "16:9"}
    big = session.shot("standing", size="1792x2400")
    assert api.requests[-1].image_config == {"aspectRatio": "3:4", "imageSize": "2K"}
    assert (wide.params["aspect_ratio"], big.params["image_size"]) == ("16:9", "2K")
    # the session's size, at the size class a shot asks for
    session.shot("sitting", params={"image_size": "4K"})
    assert api.requests[-1].image_config == {"aspectRatio": "16:9", "imageSize": "4K"}
    with PILImage.open(io.BytesIO(wide.read_bytes())) as picture:
        assert picture.width > picture.height


def test_size_words_are_checked_before_anything_is_sent(tmp_path: Path, api: FakeGemini) -> None:
    home = tmp_path / "home"
    made = run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
    assert made.code == 0, made.stderr
    run_cli(home, "session", "new", "mia", "--provider", "gemini")
    sent = len(api.requests)
    for args, words in (
        (["--param", 'aspect_ratio="5:1"'], "aspect_ratio '5:1' is not one Gemini takes"),
        (["--param", "image_size=8K"], "image_size '8K' is not one Gemini takes"),
        (["--quality", "high"], "does not take quality"),
        (["--size", "1000x1000"], "takes only the sizes"),
    ):
        outcome = run_cli(home, "shot", "--pose", "waving", *args)
        assert outcome.code != 0 and len(outcome.error_lines) == 1, outcome.stderr
        assert words in outcome.stderr
    assert len(api.requests) == sent
    direct = run_cli(
        home,
        "shot",
        "--pose",
        "waving",
        "--param",
        'aspect_ratio="9:16"',
        "--param",
        "image_size=4K",
    )
    assert direct.code == 0, direct.stderr
    assert api.requests[-1].image_config == {"aspectRatio": "9:16", "imageSize": "4K"}


def test_max_cost_goes_by_the_size_class(tmp_path: Path, api: FakeGemini) -> None:
    home = tmp_path / "home"
    run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
    run_cli(home, "session", "new", "mia", "--provider", "gemini")
    sent = len(api.requests)
    # a 4K image is 2000 tokens at $120/M: $0.24 and more; a 1K one 1120 tokens, $0.13 and more
    refused = run_cli(home, "shot", "--pose", "x", "--param", "image_size=4K", "--max-cost", "0.2")
    assert refused.code != 0 and len(refused.error_lines) == 1, refused.stderr
    assert "0.2" in refused.stderr and len(api.requests) == sent
    allowed = run_cli(home, "shot", "--pose", "x", "--max-cost", "0.2")
    assert allowed.code == 0, allowed.stderr
    assert len(api.requests) == sent + 1


def test_a_palette_check_runs_on_a_gemini_shot(tmp_path: Path, api: FakeGemini) -> None:
    home = tmp_path / "home"
    sheet = tmp_path / "mia.yaml"
    sheet.write_text("palette: ['#c0392b', '#2c3e50']\n", encoding="utf-8")
    made = run_cli(
        home,
        "character",
        "new",
        "Mia",
        "-p",
        "a girl",
        "--sheet",
        str(sheet),
        "--provider",
        "gemini",
    )
    assert made.code == 0, made.stderr
    run_cli(home, "session", "new", "mia", "--provider", "gemini")
    checked = run_cli(home, "shot", "--pose", "waving", "--check", "palette", "--json")
    assert checked.stderr == ""
    report = json.loads(checked.stdout)
    (take,) = report["takes"]
    assert report["checker"] == "palette" and take["status"] == "succeeded"
    # the fake's flat colour is not Mia's palette: the check says so, with a score
    assert checked.code == (0 if report["passed"] else 1)
    assert isinstance(take["check"]["score"], int | float)


def test_a_shot_list_runs_through_gemini_within_its_budget(tmp_path: Path, api: FakeGemini) -> None:
    home = tmp_path / "home"
    run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
    run_cli(home, "session", "new", "mia", "--provider", "gemini", "--slug", "week")
    spec = tmp_path / "week.yaml"
    spec.write_text(
        "session: week\nshots:\n  - expression: happy\n  - pose: waving\n"
        "  - pose: jumping\n    params: {image_size: 4K}\n",
        encoding="utf-8",
    )
    # two 1K shots fit in $0.30; the 4K one would go over
    tight = run_cli(home, "batch", "run", str(spec), "--budget", "0.30", "--progress", "none")
    assert tight.code != 0
    assert len(api.requests) == 1 + 2
    assert {r.image_config.get("imageSize") for r in api.requests[1:]} == {None}
    done = run_cli(home, "batch", "run", str(spec), "--budget", "1", "--progress", "none")
    assert done.code == 0, done.stderr
    assert api.requests[-1].image_config == {"imageSize": "4K"}


# --------------------------------------------------------------------------- failures


def failed_shot(home: Path, api: FakeGemini, fault: str) -> tuple[str, Image]:
    run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
    run_cli(home, "session", "new", "mia", "--provider", "gemini")
    api.fail_next(fault, times=5)
    outcome = run_cli(home, "shot", "--pose", "waving")
    assert outcome.code != 0 and len(outcome.error_lines) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    found = re.search(r"image (\d+) failed", outcome.stderr)
    assert found is not None, outcome.stderr
    with Studio.open(home) as studio:
        return outcome.stderr, studio.image(int(found.group(1)))


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        ("server", "server", "Gemini server error (HTTP 500, INTERNAL)"),
        ("unavailable", "server", "HTTP 503, UNAVAILABLE"),
        ("quota", "quota", "quota is used up"),
        (
            "rate_limit",
            "rate_limit",
            "Gemini rate limit hit (HTTP 429, RESOURCE_EXHAUSTED); retry after 1 s",
        ),
        ("image_safety", "moderation", "blocked the image under its safety rules (IMAGE_SAFETY"),
        ("prompt_blocked", "moderation", "blocked the prompt under its safety rules"),
        ("text_only", "bad_response", "without an image (STOP); it said: I would rather"),
    ],
)
def test_each_failure_is_one_line_and_a_recorded_row(
    tmp_path: Path, api: FakeGemini, fault: str, kind: str, words: str
) -> None:
    stderr, failed = failed_shot(tmp_path / "home", api, fault)
    assert words in stderr
    assert failed.error_type == kind and str(failed.error_message) in stderr


def test_a_safety_block_is_moderation_with_categories_and_the_usage_paid(
    studio: Studio, api: FakeGemini
) -> None:
    mia(studio)
    session = studio.start_session("mia", provider="gemini")
    api.fail_next("image_safety")
    with pytest.raises(GenerationError) as caught:
        session.shot("waving")
    assert "IMAGE_SAFETY: HARM_CATEGORY_SEXUALLY_EXPLICIT" in str(caught.value)
    assert caught.value.image_id is not None
    row = studio.image(caught.value.image_id)
    assert row.error_type == "moderation" and row.error_code == "IMAGE_SAFETY"
    assert row.error_categories == ("HARM_CATEGORY_SEXUALLY_EXPLICIT",)
    assert row.usage is not None and row.usage["input_tokens"] > 0
    api.fail_next("prompt_blocked")
    with pytest.raises(GenerationError) as blocked:
        session.shot("waving")
    assert "Gemini blocked the prompt" in str(blocked.value)
    assert blocked.value.image_id is not None
    assert studio.image(blocked.value.image_id).error_categories == (
        "HARM_CATEGORY_DANGEROUS_CONTENT",
    )


def test_a_rate_limit_is_retried_then_succeeds(studio: Studio, api: FakeGemini) -> None:
    mia(studio)
    session = studio.start_session("mia", provider="gemini")
    api.fail_next("rate_limit", times=2, retry_delay="12s", retry_after="12")
    shot = session.shot("waving")
    assert shot.succeeded
    assert [r.status for r in api.requests[1:]] == [429, 429, 200]


def test_a_rate_limit_that_outlasts_the_retries_reports_the_wait(
    studio: Studio, api: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    mia(studio)
    monkeypatch.setenv("ONMODEL_GEMINI_MAX_RETRIES", "1")
    session = studio.start_session("mia", provider="gemini")
    api.fail_next("rate_limit", times=2, retry_delay="12s")
    with pytest.raises(GenerationError) as caught:
        session.shot("waving")
    assert caught.value.retry_after == 12.0
    assert "retry after 12 s" in str(caught.value)
    assert caught.value.image_id is not None
    assert studio.image(caught.value.image_id).error_type == "rate_limit"
    assert len(api.requests) == 1 + 2  # the anchor, then two attempts


def test_a_slow_answer_times_out(
    studio: Studio, api: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    mia(studio)
    monkeypatch.setenv("ONMODEL_GEMINI_TIMEOUT", "0.3")
    monkeypatch.setenv("ONMODEL_GEMINI_MAX_RETRIES", "0")
    session = studio.start_session("mia", provider="gemini")
    api.fail_next("slow", seconds=3)
    with pytest.raises(GenerationError) as caught:
        session.shot("waving")
    assert "did not answer within 0.3 s" in str(caught.value)
    assert "ONMODEL_GEMINI_TIMEOUT" in str(caught.value)


def test_nothing_listening_is_a_connection_error(
    studio: Studio, api: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    mia(studio)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ONMODEL_GEMINI_MAX_RETRIES", "0")
    session = studio.start_session("mia", provider="gemini")
    with pytest.raises(GenerationError) as caught:
        session.shot("waving")
    assert "could not reach Gemini at http://127.0.0.1:9/" in str(caught.value)


# --------------------------------------------------------------------------- the key


def test_a_missing_key_is_refused_before_anything_is_recorded(
    tmp_path: Path, api: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.delenv("GEMINI_API_KEY")
    outcome = run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
    assert outcome.code != 0 and len(outcome.error_lines) == 1
    assert "GEMINI_API_KEY" in outcome.stderr
    assert api.requests == []
    listed = run_cli(home, "character", "list", "--json")
    assert "Mia" not in listed.stdout
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)  # the SDK's other variable will do
    assert (
        run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini").code == 0
    )


def test_providers_says_which_variable_holds_the_key(tmp_path: Path, api: FakeGemini) -> None:
    outcome = run_cli(tmp_path / "home", "providers", "--json")
    assert outcome.code == 0, outcome.stderr
    (gemini,) = [p for p in json.loads(outcome.stdout) if p["name"] == "gemini"]
    assert gemini["configured"] is True and "GEMINI_API_KEY" in json.dumps(gemini)
    assert KEY not in outcome.stdout


def test_a_rejected_key_is_auth_and_the_key_lands_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    with FakeGemini(api_key="AIzaSyTHE-RIGHT-ONE-000000000000") as server:
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        outcome = run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
        assert outcome.code != 0 and len(outcome.error_lines) == 1
        assert "rejected the API key" in outcome.stderr and "GEMINI_API_KEY" in outcome.stderr
        assert KEY not in outcome.stderr and "AIza" not in outcome.stderr
        monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyTHE-RIGHT-ONE-000000000000")
        assert (
            run_cli(home, "character", "new", "Rin", "-p", "a boy", "--provider", "gemini").code
            == 0
        )
        run_cli(home, "session", "new", "rin", "--provider", "gemini")
        assert run_cli(home, "shot", "--pose", "waving").code == 0
        exported = run_cli(home, "export", "--to", str(tmp_path / "out"))
        assert exported.code == 0, exported.stderr
    for key in (KEY, "AIzaSyTHE-RIGHT-ONE-000000000000"):
        for path in [*home.rglob("*"), *(tmp_path / "out").rglob("*")]:
            if path.is_file():
                assert key.encode() not in path.read_bytes(), path


def test_a_size_class_the_model_does_not_draw_is_refused_before_sending(
    studio: Studio, api: FakeGemini
) -> None:
    mia(studio)
    session = studio.start_session("mia", provider="gemini", model="gemini-2.5-flash-image")
    recorded = len(studio.session_images(session))
    with pytest.raises(ValidationError) as caught:
        session.shot("waving", params={"image_size": "4K"})
    assert "gemini-2.5-flash-image draws only 1K images, not image_size 4K" in str(caught.value)
    assert len(api.requests) == 1  # the anchor only
    assert len(studio.session_images(session)) == recorded  # refused before it is recorded
    fine = session.shot("waving", size="1344x768")
    assert fine.succeeded and api.requests[-1].model == "gemini-2.5-flash-image"
    assert api.requests[-1].image_config == {"aspectRatio": "16:9"}


def test_views_are_drawn_from_the_anchor_and_sent_with_later_shots(
    studio: Studio, api: FakeGemini
) -> None:
    mia(studio)
    anchor = studio.character("mia").anchor
    assert anchor is not None
    front, side = studio.turnaround("mia", views=["front", "side"], provider="gemini")
    for request in api.requests[1:3]:
        assert request.history == [] and inline_images(request.message) == [anchor.read_bytes()]
    session = studio.start_session("mia", provider="gemini")
    session.shot("waving")
    session.shot("jumping")
    # every turn: the anchor, then the views, whatever the chat has already seen
    expected = [anchor.read_bytes(), front.read_bytes(), side.read_bytes()]
    assert inline_images(api.requests[-2].message) == expected
    assert inline_images(api.requests[-1].message) == expected


def test_a_vertex_setting_in_the_environment_does_not_divert_the_calls(
    studio: Studio, api: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    mia(studio)
    assert [r.path for r in api.accepted] == ["/v1beta/models/gemini-3-pro-image:generateContent"]


def test_a_shot_list_and_the_command_line_take_an_aspect_ratio_as_written(
    tmp_path: Path, api: FakeGemini
) -> None:
    home = tmp_path / "home"
    run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
    run_cli(home, "session", "new", "mia", "--provider", "gemini", "--slug", "week")
    spec = tmp_path / "wide.yaml"
    spec.write_text("session: week\nshots:\n  - pose: running\n    params: {aspect_ratio: 16:9}\n")
    bare = run_cli(home, "batch", "run", str(spec), "--progress", "none")
    assert bare.code == 0, bare.stderr  # 16:9 is the ratio, not YAML 1.1's base-60 969
    assert api.requests[-1].image_config == {"aspectRatio": "16:9"}
    direct = run_cli(home, "shot", "--pose", "waving", "--param", "aspect_ratio=21:9")
    assert direct.code == 0, direct.stderr
    assert api.requests[-1].image_config == {"aspectRatio": "21:9"}


def test_an_unusable_timeout_setting_is_one_line_naming_it(
    studio: Studio, api: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    mia(studio)
    monkeypatch.setenv("ONMODEL_GEMINI_TIMEOUT", "soon")
    session = studio.start_session("mia", provider="gemini")
    with pytest.raises(ProviderError) as caught:
        session.shot("waving")
    assert "ONMODEL_GEMINI_TIMEOUT='soon' is not a number of seconds" in str(caught.value)
    assert len(api.requests) == 1
    assert studio.session_images(session) == []  # refused before anything is recorded


def test_more_images_than_the_model_takes_are_refused_before_sending(
    studio: Studio, api: FakeGemini, tmp_path: Path
) -> None:
    mia(studio)
    refs = []
    for number in range(14):
        path = tmp_path / f"ref{number}.png"
        PILImage.new("RGB", (24, 24), (number * 10, 40, 90)).save(path, "PNG")
        refs.append(path)
    session = studio.start_session("mia", provider="gemini")
    with pytest.raises(UsageError, match=r"needs 15 input images .* takes at most 14") as caught:
        session.shot("waving", refs=refs)
    assert "\n" not in str(caught.value)
    assert len(api.requests) == 1
    shot = session.shot("waving", refs=refs[:13])  # the anchor and 13: the most it takes
    assert len(inline_images(api.requests[-1].message)) == 14 and shot.succeeded


def test_without_the_sdk_gemini_says_what_to_install(
    studio: Studio, api: FakeGemini, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    """onmodel installed without its gemini extra: the provider is listed, not ready, and a
    shot is refused with what to install before anything is recorded."""
    from onmodel.providers.gemini import provider as gemini_provider

    mia(studio)
    session = studio.start_session("mia", provider="gemini")
    sent = len(api.requests)
    monkeypatch.setattr(
        gemini_provider,
        "_sdk_missing",
        lambda: "the gemini provider needs Google's SDK: pip install 'onmodel[gemini]'",
    )
    with pytest.raises(ProviderError, match=r"pip install 'onmodel\[gemini\]'"):
        session.shot("waving")
    assert studio.session_images(session) == [] and len(api.requests) == sent
    listed = json.loads(run_cli(isolated_home, "providers", "--json").stdout)
    gemini = next(each for each in listed if each["name"] == "gemini")
    assert gemini["configured"] is False and "onmodel[gemini]" in gemini["detail"]


def test_a_seed_is_sent_and_recorded_and_an_unknown_parameter_refused(
    tmp_path: Path, api: FakeGemini
) -> None:
    """``--param seed=42`` reaches Gemini (``generationConfig.seed``) and the record; a
    parameter Gemini has no use for (a typo) is one line, and nothing is sent or recorded."""
    home = tmp_path / "home"
    run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
    run_cli(home, "session", "new", "mia", "--provider", "gemini")
    made = run_cli(home, "shot", "--pose", "waving", "--param", "seed=42", "--json")
    assert made.code == 0, made.stderr
    assert api.requests[-1].generation_config["seed"] == 42
    assert json.loads(made.stdout)["params"]["seed"] == 42
    sent = len(api.requests)
    typo = run_cli(home, "shot", "--pose", "waving", "--param", "aspect=16:9")
    assert typo.code == 2 and len(typo.error_lines) == 1
    assert "gemini does not take aspect (it takes aspect_ratio, image_size, seed" in typo.stderr
    assert len(api.requests) == sent


def test_a_dry_run_says_what_a_gemini_turn_sends(tmp_path: Path, api: FakeGemini) -> None:
    """The parent goes as the chat's last turn, not as an image of its own, and the turns
    sent again (each picture paid as input) are named."""
    home = tmp_path / "home"
    run_cli(home, "character", "new", "Mia", "-p", "a girl", "--provider", "gemini")
    run_cli(home, "session", "new", "mia", "--provider", "gemini")
    first = json.loads(run_cli(home, "shot", "--pose", "waving", "--json").stdout)["id"]
    second = json.loads(run_cli(home, "shot", "--pose", "sitting", "--json").stdout)["id"]
    dry = run_cli(home, "shot", "--pose", "jumping", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert "images sent, in order: 1 anchor of Mia\n" in dry.stdout
    assert f"earlier turns sent again (each picture paid as input): #{first}, #{second}" in (
        dry.stdout
    )
