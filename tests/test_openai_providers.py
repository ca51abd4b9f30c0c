"""The OpenAI providers against a real local server (``fake_openai``) through the real SDK.

Why a server and not mocks: what matters is what goes over the wire (multipart parts in order
with image MIME types, parameters present or absent, the Responses body) and how the SDK's own
retries, ``Retry-After`` and timeouts behave with our client settings. The fake refuses what the
real API refuses, so ``assert_no_rejections()`` in the success tests says "the API would take
this request".
"""

from __future__ import annotations

import base64
import hashlib
import io
import socket
from pathlib import Path
from typing import Any

import openai
import pytest
from PIL import Image

from conftest_fakeopenai import sdk_retry_waits as _sdk_retry_waits_fixture  # noqa: F401
from fakeopenai import EDITS, GENERATIONS, RESPONSES, FakeOpenAI
from onmodel.providers import FACTORIES, default_provider_name, get_provider
from onmodel.providers.base import (
    GenerationRequest,
    GenerationResult,
    ImageKind,
    InputImage,
    ManualResult,
    ProviderError,
)
from onmodel.providers.chatgpt import ChatGPTProvider
from onmodel.providers.openai.client import QuotaAwareOpenAI, make_client
from onmodel.providers.openai.errors import map_error
from onmodel.providers.openai.images import OpenAIImagesProvider
from onmodel.providers.openai.responses import DEFAULT_RESPONSES_MODEL, OpenAIResponsesProvider

KEY = "sk-test-not-real"
PROMPT = "Mira, red bob haircut, green eyes, yellow raincoat, waving"


@pytest.fixture
def server(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """The fake server with the SDK's own environment variables pointing at it."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("ONMODEL_OPENAI_TIMEOUT", raising=False)
    monkeypatch.delenv("ONMODEL_OPENAI_MAX_RETRIES", raising=False)
    monkeypatch.delenv("ONMODEL_RESPONSES_MODEL", raising=False)
    return fake_openai


def _png(path: Path, colour: tuple[int, int, int]) -> InputImage:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    role = path.stem
    return InputImage(role, path, hashlib.sha256(buffer.getvalue()).hexdigest(), "image/png")


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[InputImage, ...]:
    """Anchor, parent and one extra reference, each a different real PNG."""
    return (
        _png(tmp_path / "anchor.png", (200, 30, 30)),
        _png(tmp_path / "parent.png", (30, 200, 30)),
        _png(tmp_path / "extra.png", (30, 30, 200)),
    )


def _request(
    kind: ImageKind = "anchor",
    model: str = "gpt-image-2",
    params: dict[str, Any] | None = None,
    inputs: tuple[InputImage, ...] = (),
    **extra: Any,
) -> GenerationRequest:
    return GenerationRequest(
        kind=kind,
        prompt=PROMPT,
        model=model,
        params=params or {},
        inputs=inputs,
        **extra,
    )


def _fail(provider: Any, request: GenerationRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        provider.generate(request)
    return caught.value


def _image(result: GenerationResult) -> Image.Image:
    image = Image.open(io.BytesIO(result.data))
    image.load()
    return image


# --- images.generate / images.edit -------------------------------------------------------------


def test_anchor_goes_to_generate_with_only_the_options_given(server: FakeOpenAI) -> None:
    params = {
        "size": "1024x1536",
        "quality": "low",
        "background": "opaque",
        "output_format": "png",
        "moderation": "low",
        "style": "vivid",  # DALL·E-only: must never be sent
        "response_format": "url",  # DALL·E-only: must never be sent
        "responses_model": "gpt-6-sol",  # the other provider's key: ignored here
    }
    result = OpenAIImagesProvider().generate(_request(params=params))

    server.assert_no_rejections()
    (sent,) = server.requests
    assert sent.path == GENERATIONS
    assert sent.json == {
        "prompt": PROMPT,
        "model": "gpt-image-2",
        "size": "1024x1536",
        "quality": "low",
        "background": "opaque",
        "output_format": "png",
        "moderation": "low",
        "n": 1,
    }
    assert result.sent_params == {k: v for k, v in sent.json.items() if k != "prompt"}
    assert result.format == "png"
    assert _image(result).size == (1024 // 16, 1536 // 16)
    assert result.returned == {
        "size": "1024x1536",
        "quality": "low",
        "background": "opaque",
        "output_format": "png",
    }
    assert result.revised_prompt is None and result.gen_id is None
    assert result.usage is not None and result.usage["output_tokens"] > 0


def test_shot_sends_anchor_parent_extra_in_order_as_typed_files(
    server: FakeOpenAI, inputs: tuple[InputImage, ...]
) -> None:
    params = {"size": "1536x864", "output_format": "webp", "output_compression": 80}
    params["moderation"] = "low"  # generate-only: must not reach images.edit
    result = OpenAIImagesProvider().generate(_request("shot", params=params, inputs=inputs))

    server.assert_no_rejections()
    (sent,) = server.requests
    assert sent.path == EDITS
    assert [f.data for f in sent.images] == [i.path.read_bytes() for i in inputs]
    assert [f.content_type for f in sent.images] == ["image/png"] * 3
    assert [f.filename for f in sent.images] == ["00-anchor.png", "01-parent.png", "02-extra.png"]
    fields = sent.fields
    assert fields["prompt"] == PROMPT and fields["model"] == "gpt-image-2"
    assert fields["size"] == "1536x864" and fields["output_compression"] == "80"
    for absent in ("input_fidelity", "moderation", "response_format", "style"):
        assert absent not in fields  # gpt-image-2: "omit this parameter"
    assert result.format == "webp"
    assert result.sent_params == {
        "model": "gpt-image-2",
        "size": "1536x864",
        "output_format": "webp",
        "output_compression": 80,
        "n": 1,
        "images": [{"role": i.role, "sha256": i.sha256} for i in inputs],
    }


@pytest.mark.parametrize(
    ("model", "params", "expected"),
    [
        ("gpt-image-1.5", {}, "high"),
        ("gpt-image-1.5", {"input_fidelity": "low"}, "low"),
        ("gpt-image-1-mini", {}, None),  # takes only low, the API default
        ("gpt-image-1-mini", {"input_fidelity": "high"}, None),  # not allowed: left out
        ("chatgpt-image-latest", {}, None),
    ],
)
def test_input_fidelity_follows_the_capability_table(
    server: FakeOpenAI,
    inputs: tuple[InputImage, ...],
    model: str,
    params: dict[str, Any],
    expected: str | None,
) -> None:
    result = OpenAIImagesProvider().generate(_request("shot", model, params, inputs[:1]))

    server.assert_no_rejections()
    assert server.requests[0].fields.get("input_fidelity") == expected
    assert result.sent_params.get("input_fidelity") == expected


def test_a_changed_input_file_is_refused_before_anything_is_sent(
    server: FakeOpenAI, inputs: tuple[InputImage, ...]
) -> None:
    inputs[0].path.write_bytes(inputs[1].path.read_bytes())
    error = _fail(OpenAIImagesProvider(), _request("shot", inputs=inputs))
    assert error.kind == "invalid_request" and "changed" in str(error)
    assert server.requests == []


# --- faults: retries, quota, moderation, timeouts, auth ---------------------------------------


def test_rate_limit_is_retried_after_retry_after_then_succeeds(
    server: FakeOpenAI, sdk_retry_waits: list[float]
) -> None:
    server.fail_next(GENERATIONS, "rate_limit", retry_after=0.2)
    result = OpenAIImagesProvider().generate(_request())

    first, second = server.requests
    assert (first.status, second.status) == (429, 200)
    assert second.retry_count == 1
    # Retry-After's 0.2 s, not the SDK's 0.375-0.5 s backoff (as the SDK scheduled it: the
    # gap the server sees also holds the machine's load) ...
    assert sdk_retry_waits == [pytest.approx(0.2)]
    # ... and the retry came no sooner
    assert second.received_at - first.received_at >= 0.2
    assert result.data


def test_insufficient_quota_is_attempted_exactly_once(server: FakeOpenAI) -> None:
    server.fail_next(GENERATIONS, "insufficient_quota", times=None, retry_after=0.05)
    error = _fail(OpenAIImagesProvider(), _request())

    assert len(server.requests) == 1
    assert error.kind == "quota" and error.code == "insufficient_quota"
    assert "out of quota" in str(error)


def test_quota_aware_client_still_retries_other_429s(server: FakeOpenAI) -> None:
    """The override must only veto the quota case; the SDK keeps every other decision."""
    client = make_client()
    assert isinstance(client, QuotaAwareOpenAI)
    assert isinstance(client.with_options(max_retries=1), QuotaAwareOpenAI)
    server.fail_next(GENERATIONS, "rate_limit", times=2, retry_after=0.01)
    OpenAIImagesProvider(client.with_options(max_retries=2)).generate(_request())
    assert [r.status for r in server.requests] == [429, 429, 200]


def test_moderation_block_is_reported_with_its_categories(
    server: FakeOpenAI, inputs: tuple[InputImage, ...]
) -> None:
    server.fail_next(EDITS, "moderation", categories=("sexual", "violence"))
    error = _fail(OpenAIImagesProvider(), _request("shot", inputs=inputs))

    assert len(server.requests) == 1
    assert error.kind == "moderation" and error.code == "moderation_blocked"
    assert error.categories == ["sexual", "violence"]
    assert str(error) == (
        "OpenAI refused the prompt under its content policy (moderation_blocked: sexual, violence)"
    )


def test_server_errors_are_retried_then_reported(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "2")
    server.fail_next(GENERATIONS, "server_error", times=None, retry_after=0.01)
    error = _fail(OpenAIImagesProvider(), _request())

    assert [r.status for r in server.requests] == [500, 500, 500]
    assert error.kind == "server"
    assert "HTTP 500" in str(error) and "after 2 retries" in str(error)


def test_a_slow_answer_times_out(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONMODEL_OPENAI_TIMEOUT", "0.5")
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    # The stall outlasts the test: an answer instead of a timeout means the client waited on.
    server.fail_next(GENERATIONS, "timeout", delay=120)
    error = _fail(OpenAIImagesProvider(), _request())

    assert error.kind == "timeout" and "0.5 s" in str(error)
    assert server.requests[0].headers["x-stainless-read-timeout"] == "0.5"


def test_a_broken_image_payload_is_a_bad_response(server: FakeOpenAI) -> None:
    server.fail_next(GENERATIONS, "malformed")
    error = _fail(OpenAIImagesProvider(), _request())
    assert error.kind == "bad_response"
    assert error.usage is not None  # the call was billed; the studio records what it cost


def test_a_rejected_key_is_auth_and_never_quoted(server: FakeOpenAI) -> None:
    server.fail_next(GENERATIONS, "auth")
    error = _fail(OpenAIImagesProvider(), _request())

    assert len(server.requests) == 1  # 401 is not retried
    assert error.kind == "auth"
    text = str(error)
    assert KEY not in text and KEY[-4:] not in text and "sk-" not in text
    assert "OPENAI_API_KEY" in text


def test_an_unreachable_server_is_a_connection_error(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    error = _fail(OpenAIImagesProvider(), _request())
    assert error.kind == "connection"
    # the whole address the SDK used: a wrong port or base path in OPENAI_BASE_URL shows
    address = f"http://127.0.0.1:{port}/v1/images/generations"
    assert f"could not reach OpenAI at {address}:" in str(error)


def test_an_unreachable_server_address_leaves_out_credentials_and_query(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:secret@127.0.0.1:{port}/v1")
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    error = _fail(OpenAIImagesProvider(), _request())
    assert f"at http://127.0.0.1:{port}/v1/images/generations:" in str(error)
    assert "secret" not in str(error) and "user" not in str(error)


def test_no_key_is_auth_without_any_request(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    error = _fail(OpenAIImagesProvider(), _request())
    assert error.kind == "auth" and "OPENAI_API_KEY" in str(error)
    assert server.requests == []


def test_providers_say_whether_they_need_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trait the studio checks before recording a shot, never the provider's name."""
    assert get_provider("openai-images").key_env == "OPENAI_API_KEY"
    assert get_provider("openai-responses").key_env == "OPENAI_API_KEY"
    assert not get_provider("openai-images").has_key()
    assert get_provider("preview").has_key() and get_provider("chatgpt").has_key()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert get_provider("openai-images").has_key() and get_provider("openai-responses").has_key()


@pytest.mark.parametrize(
    ("name", "value"),
    [("ONMODEL_OPENAI_TIMEOUT", "soon"), ("ONMODEL_OPENAI_MAX_RETRIES", "-1")],
)
def test_unusable_settings_are_config_errors(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    error = _fail(OpenAIImagesProvider(), _request())
    assert error.kind == "config" and name in str(error)


def test_map_error_passes_provider_errors_and_wraps_the_rest() -> None:
    original = ProviderError("x", kind="quota")
    assert map_error(original) is original
    wrapped = map_error(RuntimeError(f"boom {KEY}"))
    assert wrapped.kind == "unexpected" and KEY not in str(wrapped)


# --- responses ---------------------------------------------------------------------------------


def test_responses_first_turn_sends_primer_and_anchor_second_turn_continues(
    server: FakeOpenAI, inputs: tuple[InputImage, ...]
) -> None:
    anchor, parent, _ = inputs
    provider = OpenAIResponsesProvider()
    primer = "From now on, keep Mira consistent."
    first = provider.generate(
        _request("shot", params={"size": "1024x1024"}, inputs=(anchor,), instructions=primer)
    )

    body = server.requests[0].json
    assert server.requests[0].path == RESPONSES
    assert body["model"] == DEFAULT_RESPONSES_MODEL and body["instructions"] == primer
    assert body["store"] is True and "previous_response_id" not in body
    assert body["tool_choice"] == {"type": "image_generation"}
    assert body["tools"] == [
        {"type": "image_generation", "model": "gpt-image-2", "size": "1024x1024"}
    ]
    (message,) = body["input"]
    assert message["role"] == "user"
    text, image = message["content"]
    assert text == {"type": "input_text", "text": PROMPT}
    assert image["type"] == "input_image" and image["detail"] == "high"
    encoded = base64.b64encode(anchor.path.read_bytes()).decode()
    assert image["image_url"] == f"data:image/png;base64,{encoded}"

    assert first.gen_id is not None and first.gen_id.startswith("ig_")
    assert first.response_id is not None and first.response_id.startswith("resp_")
    assert first.revised_prompt and PROMPT in first.revised_prompt
    assert first.returned["action"] == "edit" and first.returned["size"] == "1024x1024"
    assert first.sent_params["images"] == [{"role": "anchor", "sha256": anchor.sha256}]
    assert first.sent_params["instructions_sha256"] == hashlib.sha256(primer.encode()).hexdigest()
    assert first.usage is not None and first.usage["output_tokens"] > 0
    assert first.usage["responses_model"] == DEFAULT_RESPONSES_MODEL
    _image(first)

    second = provider.generate(
        _request(
            "shot",
            inputs=(anchor, parent),
            instructions=primer,
            previous_response_id=first.response_id,
        )
    )
    body = server.requests[1].json
    assert body["previous_response_id"] == first.response_id
    assert body["instructions"] == primer  # not inherited through previous_response_id
    assert [part["type"] for part in body["input"][0]["content"]] == ["input_text"]
    assert "ig_" not in str(body["input"])
    assert second.response_id != first.response_id and second.gen_id != first.gen_id
    assert second.sent_params["previous_response_id"] == first.response_id
    assert "images" not in second.sent_params

    # A --ref file is new to the conversation, so it is attached on later turns too.
    third = provider.generate(
        _request("shot", inputs=inputs, previous_response_id=second.response_id)
    )
    content = server.requests[2].json["input"][0]["content"]
    extra = base64.b64encode(inputs[2].path.read_bytes()).decode()
    assert [part.get("image_url") for part in content[1:]] == [f"data:image/png;base64,{extra}"]
    assert third.sent_params["images"] == [{"role": "extra", "sha256": inputs[2].sha256}]
    server.assert_no_rejections()


def test_responses_model_and_fidelity_are_configurable(
    server: FakeOpenAI, inputs: tuple[InputImage, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONMODEL_RESPONSES_MODEL", "gpt-6.1-sol")
    provider = OpenAIResponsesProvider()
    provider.generate(_request("shot", "gpt-image-1.5", inputs=inputs[:1]))
    provider.generate(_request("anchor", params={"responses_model": "gpt-6-luna"}))

    first, second = (r.json for r in server.requests)
    assert first["model"] == "gpt-6.1-sol"
    assert first["tools"][0]["input_fidelity"] == "high"
    assert "instructions" not in first
    assert second["model"] == "gpt-6-luna"
    assert "input_fidelity" not in second["tools"][0]
    assert [part["type"] for part in second["input"][0]["content"]] == ["input_text"]
    server.assert_no_rejections()


def test_responses_moderation_is_reported_with_categories(
    server: FakeOpenAI, inputs: tuple[InputImage, ...]
) -> None:
    server.fail_next(RESPONSES, "moderation", categories=("violence",))
    error = _fail(OpenAIResponsesProvider(), _request("shot", inputs=inputs[:1]))

    assert error.kind == "moderation" and error.categories == ["violence"]
    assert error.response_id is not None and error.response_id.startswith("resp_")
    assert "moderation_blocked: violence" in str(error)


def test_responses_broken_payload_and_errors(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.fail_next(RESPONSES, "malformed")
    error = _fail(OpenAIResponsesProvider(), _request())
    assert error.kind == "bad_response" and error.response_id is not None

    server.fail_next(RESPONSES, "insufficient_quota", times=None)
    assert _fail(OpenAIResponsesProvider(), _request()).kind == "quota"
    assert len(server.requests_to(RESPONSES)) == 2

    missing = _fail(OpenAIResponsesProvider(), _request(previous_response_id="resp_gone"))
    assert missing.kind == "invalid_request" and missing.code == "previous_response_not_found"


# --- chatgpt and the registry ------------------------------------------------------------------


def test_chatgpt_returns_primer_once_then_only_shots() -> None:
    provider = ChatGPTProvider()
    first = provider.generate(_request("shot", instructions="PRIMER"))
    later = provider.generate(_request("shot", instructions="PRIMER", previous_response_id="c1"))
    bare = provider.generate(_request("shot"))

    assert isinstance(first, ManualResult)
    assert first.messages == ["PRIMER", PROMPT]
    assert later.messages == [PROMPT] and bare.messages == [PROMPT]
    # how many messages each turn sent is recorded: later shots are numbered after them
    assert first.sent_params == {"route": "manual", "messages": 2, "conversation_cast": []}
    assert later.sent_params == {"route": "manual", "messages": 1, "conversation_cast": []}


def test_chatgpt_names_the_anchor_to_attach_with_the_primer_only(
    inputs: tuple[InputImage, ...],
) -> None:
    provider = ChatGPTProvider()
    first = provider.generate(_request("shot", inputs=inputs[:2], instructions="PRIMER"))
    later = provider.generate(
        _request("shot", inputs=inputs[:2], instructions="PRIMER", previous_response_id="c1")
    )
    assert first.attach == (inputs[0],) and inputs[0].role == "anchor"
    assert later.attach == ()


def test_registry_lists_the_providers_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"preview", "openai-images", "openai-responses", "chatgpt"} <= set(FACTORIES)
    assert not get_provider("chatgpt").billed and get_provider("openai-images").billed
    assert isinstance(get_provider("openai-images"), OpenAIImagesProvider)  # no key needed yet
    assert isinstance(get_provider("openai-responses"), OpenAIResponsesProvider)
    assert get_provider("chatgpt").name == "chatgpt"
    assert default_provider_name() == "preview"
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert default_provider_name() == "openai-images"
    assert issubclass(QuotaAwareOpenAI, openai.OpenAI)
