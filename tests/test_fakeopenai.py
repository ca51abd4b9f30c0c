"""Self-test of the FakeOpenAI server, driven by the REAL ``openai`` SDK.

Why: every other test trusts that this server speaks the API the way the SDK and
the real service do.  These tests pin that down: the body shapes parse under the
SDK's strict validation, multipart uploads arrive in order, each injected fault
surfaces as the SDK exception the production code will catch, and the SDK's
retry behaviour (which the code under test relies on) is what we think it is.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseOutputMessage
from openai.types.responses.response_output_item import ImageGenerationCall
from PIL import Image

from conftest_fakeopenai import fake_openai as _fake_openai_fixture  # noqa: F401
from conftest_fakeopenai import sdk_retry_waits as _sdk_retry_waits_fixture  # noqa: F401
from fakeopenai import FakeOpenAI

MODEL = "gpt-image-2"


def client_for(server: FakeOpenAI, max_retries: int = 0, **kwargs: Any) -> openai.OpenAI:
    """A real client with strict response validation, so bad bodies fail loudly."""
    return openai.OpenAI(
        api_key="sk-test",
        base_url=server.base_url,
        max_retries=max_retries,
        _strict_response_validation=True,
        **kwargs,
    )


def decode(b64: str | None) -> Image.Image:
    """Decode a returned base64 image fully, as the production code will."""
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def png(colour: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    """A small reference PNG to upload."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def image_call(response: openai.types.responses.Response) -> ImageGenerationCall:
    """The single image_generation_call output item."""
    calls = [item for item in response.output if isinstance(item, ImageGenerationCall)]
    assert len(calls) == 1
    return calls[0]


# --------------------------------------------------------------------------- success


def test_generate_returns_small_png_that_varies_with_prompt(fake_openai: FakeOpenAI) -> None:
    client = client_for(fake_openai)
    fox = client.images.generate(model=MODEL, prompt="a fox", size="1536x1024", quality="low")
    owl = client.images.generate(model=MODEL, prompt="an owl")

    assert fox.data is not None and owl.data is not None
    fox_image, owl_image = decode(fox.data[0].b64_json), decode(owl.data[0].b64_json)
    assert fox_image.format == "PNG" and fox_image.size == (96, 64)
    assert fox_image.getpixel((10, 10)) == FakeOpenAI.color_for("a fox")
    assert fox_image.getpixel((0, 0)) != owl_image.getpixel((0, 0))
    assert fox.data[0].url is None and fox.data[0].revised_prompt is None
    assert (fox.size, fox.quality, fox.output_format, fox.background) == (
        "1536x1024",
        "low",
        "png",
        "opaque",
    )
    assert owl.size == "1024x1024" and owl.quality == "high"  # "auto" resolved
    assert fox.usage is not None and fox.usage.output_tokens_details is not None
    assert fox.usage.total_tokens == fox.usage.input_tokens + fox.usage.output_tokens

    first = fake_openai.requests[0]
    assert first.path == "/v1/images/generations"
    assert first.json == {"model": MODEL, "prompt": "a fox", "size": "1536x1024", "quality": "low"}
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.retry_count == 0
    assert first.outcome == "ok" and first.status == 200
    fake_openai.assert_no_rejections()


def test_generate_n_images_differ(fake_openai: FakeOpenAI) -> None:
    result = client_for(fake_openai).images.generate(model=MODEL, prompt="cat", n=3)
    assert result.data is not None
    colours = {decode(d.b64_json).getpixel((0, 0)) for d in result.data}
    assert len(colours) == 3


def test_edit_sends_images_in_order_as_image_array(fake_openai: FakeOpenAI) -> None:
    refs = [png((255, 0, 0)), png((0, 255, 0)), png((0, 0, 255))]
    result = client_for(fake_openai).images.edit(
        model="gpt-image-1.5",
        image=[(f"ref{i}.png", data, "image/png") for i, data in enumerate(refs)],
        prompt="same character, waving",
        input_fidelity="high",
        size="1024x1536",
        quality="medium",
    )
    assert result.data is not None
    assert decode(result.data[0].b64_json).size == (64, 96)
    assert result.usage is not None
    assert result.usage.input_tokens_details.image_tokens > 0

    request = fake_openai.requests_to("images/edits")[0]
    assert [f.field for f in request.images] == ["image[]"] * 3
    assert [f.filename for f in request.images] == ["ref0.png", "ref1.png", "ref2.png"]
    assert [f.data for f in request.images] == refs
    assert {f.content_type for f in request.images} == {"image/png"}
    assert request.fields == {
        "prompt": "same character, waving",
        "model": "gpt-image-1.5",
        "input_fidelity": "high",
        "size": "1024x1536",
        "quality": "medium",
    }
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    fake_openai.assert_no_rejections()


def test_edit_single_image_uses_plain_image_field(fake_openai: FakeOpenAI) -> None:
    client_for(fake_openai).images.edit(model=MODEL, image=("ref.png", png((1, 2, 3))), prompt="p")
    assert [f.field for f in fake_openai.requests[0].images] == ["image"]


def test_responses_image_generation_and_previous_response_id(fake_openai: FakeOpenAI) -> None:
    client = client_for(fake_openai)
    tools: Any = [{"type": "image_generation", "quality": "low", "size": "1024x1536"}]
    first = client.responses.create(model="gpt-5", input="draw a cat", tools=tools)

    assert first.id.startswith("resp_") and first.status == "completed"
    call = image_call(first)
    assert call.id.startswith("ig_") and call.status == "completed"
    assert call.action == "generate"
    assert (call.size, call.quality, call.output_format, call.background) == (
        "1024x1536",
        "low",
        "png",
        "opaque",
    )
    assert call.revised_prompt
    assert decode(call.result).size == (64, 96)
    assert any(isinstance(item, ResponseOutputMessage) for item in first.output)
    assert first.usage is not None and first.usage.input_tokens > 0
    assert first.previous_response_id is None

    second = client.responses.create(
        model="gpt-5", input="now make it blue", previous_response_id=first.id, tools=tools
    )
    assert second.previous_response_id == first.id
    assert image_call(second).action == "edit"
    assert fake_openai.requests[1].json["previous_response_id"] == first.id
    assert first.id in fake_openai.issued_response_ids
    fake_openai.assert_no_rejections()


def test_responses_accepts_full_image_call_item_and_item_reference(
    fake_openai: FakeOpenAI,
) -> None:
    client = client_for(fake_openai)
    tools: Any = [{"type": "image_generation"}]
    first = client.responses.create(model="gpt-5", input="draw a cat", tools=tools)
    call = image_call(first)
    full_item: Any = call.model_dump(exclude_none=True)
    client.responses.create(
        model="gpt-5",
        input=[full_item, {"role": "user", "content": "again, smiling"}],
        tools=tools,
    )
    client.responses.create(
        model="gpt-5",
        input=[
            {"type": "item_reference", "id": call.id},
            {"role": "user", "content": "again"},
        ],
        tools=tools,
    )
    fake_openai.assert_no_rejections()


# --------------------------------------------------------------------------- validation


def test_responses_rejects_bare_image_call_id(fake_openai: FakeOpenAI) -> None:
    client = client_for(fake_openai)
    tools: Any = [{"type": "image_generation"}]
    first = client.responses.create(model="gpt-5", input="draw a cat", tools=tools)
    bare: Any = {"type": "image_generation_call", "id": image_call(first).id}
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.responses.create(model="gpt-5", input=[bare], tools=tools)
    assert excinfo.value.code == "missing_required_parameter"
    assert len(fake_openai.rejected) == 1


def test_responses_rejects_unknown_or_unstored_previous_response(
    fake_openai: FakeOpenAI,
) -> None:
    client = client_for(fake_openai)
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.responses.create(model="gpt-5", input="hi", previous_response_id="resp_nope")
    assert excinfo.value.code == "previous_response_not_found"
    assert excinfo.value.param == "previous_response_id"

    unstored = client.responses.create(model="gpt-5", input="hi", store=False)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-5", input="hi", previous_response_id=unstored.id)

    stored = client.responses.create(model="gpt-5", input="hi")
    fake_openai.expire_response(stored.id)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-5", input="hi", previous_response_id=stored.id)
    assert len(fake_openai.rejected) == 3


def _generate(**kwargs: Any) -> Callable[[openai.OpenAI], object]:
    """A call with SDK-valid arguments the real API still refuses."""
    params: dict[str, Any] = {"model": MODEL, "prompt": "p", **kwargs}
    return lambda client: client.images.generate(**params)


def _edit(count: int = 1, **kwargs: Any) -> Callable[[openai.OpenAI], object]:
    """An edit with ``count`` PNG references."""
    params: dict[str, Any] = {"model": MODEL, "prompt": "p", **kwargs}
    images = [(f"r{i}.png", png((i, i, i)), "image/png") for i in range(count)]
    return lambda client: client.images.edit(image=images, **params)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (_generate(response_format="b64_json"), "unknown_parameter"),
        (_generate(style="vivid"), "unknown_parameter"),
        (_generate(quality="hd"), "invalid_value"),
        (_generate(quality="standard"), "invalid_value"),
        (_generate(model="dall-e-3"), "model_not_found"),
        (_generate(model="dall-e-2"), "model_not_found"),
        (_generate(model="gpt-image-1"), "model_not_found"),
        (_generate(model="gpt-image-99"), "invalid_value"),
        (_generate(size="1000x1000"), "invalid_value"),
        (_generate(model="gpt-image-1.5", size="1536x864"), "invalid_value"),
        (_generate(background="transparent", output_format="jpeg"), "invalid_value"),
        (_generate(extra_body={"seed": 1}), "unknown_parameter"),
        (_edit(input_fidelity="high"), "unsupported_parameter"),
        (_edit(model="gpt-image-2.5-flare", input_fidelity="low"), "unsupported_parameter"),
        (_edit(17), "array_above_max_length"),
        (
            lambda client: client.images.edit(model=MODEL, prompt="p", image=[png((1, 1, 1))]),
            "unsupported_file",  # raw bytes go out as application/octet-stream
        ),
        (
            lambda client: client.post(
                "/images/generations", body={"model": MODEL}, cast_to=object
            ),
            "missing_required_parameter",
        ),
        (
            lambda client: client.responses.create(
                model="gpt-5",
                input="x",
                tools=[{"type": "image_generation", "input_fidelity": "high"}],
            ),
            "unsupported_parameter",  # the tool's default model is gpt-image-2.6-*
        ),
    ],
)
def test_rejects_what_the_real_api_rejects(
    fake_openai: FakeOpenAI, call: Callable[[openai.OpenAI], object], code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as excinfo:
        call(client_for(fake_openai))
    assert excinfo.value.code == code
    assert excinfo.value.type == "invalid_request_error"
    assert len(fake_openai.rejected) == 1
    with pytest.raises(AssertionError):
        fake_openai.assert_no_rejections()


def test_accepts_flexible_sizes_and_xhigh_on_new_models(fake_openai: FakeOpenAI) -> None:
    client = client_for(fake_openai)
    wide = client.images.generate(
        model="gpt-image-2.5-sunburst", prompt="p", size="1536x864", quality="xhigh"
    )
    assert wide.size == "1536x864" and wide.quality == "xhigh"
    assert wide.data is not None and decode(wide.data[0].b64_json).size == (96, 54)
    fake_openai.assert_no_rejections()


def test_missing_api_key_is_rejected_with_401(fake_openai: FakeOpenAI) -> None:
    guarded = FakeOpenAI(api_key="sk-right").start()
    try:
        with pytest.raises(openai.AuthenticationError) as excinfo:
            client_for(guarded).images.generate(model=MODEL, prompt="p")
        assert excinfo.value.code == "invalid_api_key"
        assert len(guarded.rejected) == 1
    finally:
        guarded.stop()


# --------------------------------------------------------------------------- faults


def test_rate_limit_surfaces_as_rate_limit_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("images/generations", "rate_limit", retry_after=2)
    with pytest.raises(openai.RateLimitError) as excinfo:
        client_for(fake_openai).images.generate(model=MODEL, prompt="p")
    assert excinfo.value.code == "rate_limit_exceeded"
    assert excinfo.value.response.headers["retry-after"] == "2"
    assert excinfo.value.request_id is not None
    assert fake_openai.requests[0].outcome == "rate_limit"
    assert fake_openai.pending_faults("images/generations") == 0


def test_sdk_retries_429_honouring_retry_after(
    fake_openai: FakeOpenAI, sdk_retry_waits: list[float]
) -> None:
    fake_openai.fail_next("images/generations", "rate_limit", retry_after=0.2)
    result = client_for(fake_openai, max_retries=2).images.generate(model=MODEL, prompt="p")
    assert result.data is not None
    requests = fake_openai.requests
    assert [r.retry_count for r in requests] == [0, 1]
    assert [r.status for r in requests] == [429, 200]
    # the SDK waited Retry-After's 0.2 s, not its own 0.375-0.5 s back-off ...
    assert sdk_retry_waits == [pytest.approx(0.2)]
    # ... and the server saw the retry no sooner (a busy machine only adds to the gap)
    assert requests[1].received_at - requests[0].received_at >= 0.2


def test_sdk_honours_retry_after_ms(fake_openai: FakeOpenAI, sdk_retry_waits: list[float]) -> None:
    fake_openai.fail_next("responses", "rate_limit", retry_after=None, retry_after_ms=30)
    client_for(fake_openai, max_retries=1).responses.create(model="gpt-5", input="x")
    first, second = fake_openai.requests
    assert "retry-after" not in first.response_headers
    assert first.response_headers["retry-after-ms"] == "30"
    assert sdk_retry_waits == [pytest.approx(0.03)]
    assert second.received_at - first.received_at >= 0.03


def test_insufficient_quota(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("images/edits", "insufficient_quota", times=None)
    with pytest.raises(openai.RateLimitError) as excinfo:
        client_for(fake_openai).images.edit(
            model=MODEL, image=("r.png", png((0, 0, 0))), prompt="p"
        )
    assert excinfo.value.code == "insufficient_quota"
    assert excinfo.value.type == "insufficient_quota"
    assert fake_openai.pending_faults("images/edits") == 1  # endless until cleared
    fake_openai.clear_faults("images/edits")
    assert fake_openai.pending_faults("images/edits") == 0


def test_server_error_after_retries(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("images/generations", "server_error", times=3, retry_after=0.01)
    with pytest.raises(openai.InternalServerError) as excinfo:
        client_for(fake_openai, max_retries=2).images.generate(model=MODEL, prompt="p")
    assert excinfo.value.status_code == 500
    assert [r.retry_count for r in fake_openai.requests] == [0, 1, 2]


def test_timeout_surfaces_as_api_timeout_error(fake_openai: FakeOpenAI) -> None:
    # The stall outlasts everything below: an answer would mean the client never gave up.
    fake_openai.fail_next("images/generations", "timeout", delay=120)
    with pytest.raises(openai.APITimeoutError):
        client_for(fake_openai, timeout=0.3).images.generate(model=MODEL, prompt="p")
    # The stalled handler notices the hang-up and finishes instead of sleeping on (the
    # generous wait is for a busy machine; sleeping on would take two minutes).
    deadline = time.monotonic() + 30
    while fake_openai.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_openai.in_flight == 0


def test_timeout_then_retry_succeeds(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("images/generations", "timeout", delay=5)
    client = client_for(fake_openai, max_retries=1, timeout=0.3)
    result = client.images.generate(model=MODEL, prompt="p")
    assert result.data is not None
    assert [r.retry_count for r in fake_openai.requests] == [0, 1]


def test_moderation_on_images_is_bad_request(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("images/generations", "moderation", categories=("violence",))
    with pytest.raises(openai.BadRequestError) as excinfo:
        client_for(fake_openai).images.generate(model=MODEL, prompt="p")
    error = excinfo.value
    assert error.code == "moderation_blocked"
    assert "safety system" in error.message
    assert isinstance(error.body, dict)
    assert error.body["moderation_details"]["categories"] == ["violence"]
    assert fake_openai.rejected == []  # a scripted fault, not an invalid request


def test_moderation_on_responses_is_failed_image_call(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("responses", "moderation", moderation_stage="output")
    response = client_for(fake_openai).responses.create(
        model="gpt-5", input="x", tools=[{"type": "image_generation"}]
    )
    assert response.status == "completed"
    call = image_call(response)
    assert call.status == "failed" and call.result is None
    assert call.error is not None and call.error.code == "moderation_blocked"
    assert call.error.moderation_details is not None
    assert call.error.moderation_details.moderation_stage == "output"
    assert call.error.moderation_details.categories == ["sexual"]


def test_malformed_payload_is_not_an_image(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("images/generations", "malformed")
    fake_openai.fail_next("responses", "malformed")
    client = client_for(fake_openai)
    result = client.images.generate(model=MODEL, prompt="p")
    assert result.data is not None
    with pytest.raises(Exception, match="cannot identify image"):
        decode(result.data[0].b64_json)
    response = client.responses.create(
        model="gpt-5", input="x", tools=[{"type": "image_generation"}]
    )
    with pytest.raises(Exception, match="cannot identify image"):
        decode(image_call(response).result)


def test_auth_fault(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("*", "auth")
    with pytest.raises(openai.AuthenticationError) as excinfo:
        client_for(fake_openai).responses.create(model="gpt-5", input="x")
    assert excinfo.value.code == "invalid_api_key"


def test_faults_are_consumed_in_order_then_success(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("images/generations", "server_error", retry_after=0.01)
    fake_openai.fail_next("images/generations", "rate_limit", retry_after=0.01)
    client_for(fake_openai, max_retries=2).images.generate(model=MODEL, prompt="p")
    assert [r.outcome for r in fake_openai.requests] == ["server_error", "rate_limit", "ok"]


# --------------------------------------------------------------------------- plumbing


def test_concurrent_requests_and_latency(fake_openai: FakeOpenAI) -> None:
    fake_openai.latency = 0.3
    client = client_for(fake_openai)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            client.images.generate(model=MODEL, prompt=f"p{i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert fake_openai.max_in_flight == 8  # served side by side, not one after another
    assert fake_openai.in_flight == 0
    requests = fake_openai.requests
    assert len(requests) == 8
    for request in requests:  # each answered no sooner than the latency
        assert request.finished_at is not None
        assert request.finished_at - request.received_at >= 0.3


def test_stop_is_quick_while_a_handler_stalls() -> None:
    server = FakeOpenAI().start()
    server.fail_next("images/generations", "timeout", delay=60)
    client = client_for(server, timeout=60)
    outcome: list[object] = []

    def call() -> None:
        """Whatever the client gets (an answer once the stall is cut) is fine."""
        try:
            outcome.append(client.images.generate(model=MODEL, prompt="p"))
        except openai.APIError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    assert server.wait_for_requests(1)
    started = time.monotonic()
    server.stop()
    # Seconds at most, on the busiest machine, against the 60 s stall it cut short; and the
    # stalled handler answered, so the client is not left waiting for the stall either.
    assert time.monotonic() - started < 30
    thread.join(timeout=30)
    assert len(outcome) == 1


def test_reset_clears_records_and_faults(fake_openai: FakeOpenAI) -> None:
    fake_openai.fail_next("images/generations", "auth", times=5)
    client_for(fake_openai).responses.create(model="gpt-5", input="x")
    fake_openai.reset()
    assert fake_openai.requests == [] and fake_openai.max_in_flight == 0
    assert fake_openai.pending_faults("images/generations") == 0
    assert fake_openai.issued_response_ids == set()


def test_unknown_path_is_404(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client_for(fake_openai).post("/images/variations", body={}, cast_to=object)
    assert fake_openai.rejected[0].rejection == "Invalid URL (POST /v1/images/variations)"


def test_standalone_process_prints_base_url_and_serves() -> None:
    script = Path(__file__).with_name("fakeopenai.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--latency", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        client = openai.OpenAI(api_key="sk-test", base_url=base_url, max_retries=0)
        result = client.images.generate(model=MODEL, prompt="p")
        assert result.data is not None
        root = base_url.removesuffix("/v1")
        client.post(
            f"{root}/_fake/fail_next",
            body={"path": "images/generations", "kind": "rate_limit"},
            cast_to=object,
        )
        with pytest.raises(openai.RateLimitError):
            client.images.generate(model=MODEL, prompt="p")
        stats: Any = client.get(f"{root}/_fake/stats", cast_to=object)
        assert stats["requests"] == 2 and stats["latency"] == 0.05
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
