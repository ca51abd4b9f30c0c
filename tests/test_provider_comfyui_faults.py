"""What a comfyui user sees when something goes wrong: a server that is down, busy or failing,
a render that never ends, a workflow the server or onmodel refuses. Each is one line, a
non-zero exit, and (once the request was recorded) a failed row saying which kind."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_inprocess import Outcome, run_cli
from fakecomfyui import FakeComfyUI
from onmodel.providers.comfyui import ComfyUIProvider
from onmodel.providers.comfyui.provider import ANCHOR_WORKFLOW_ENV, TIMEOUT_ENV
from test_provider_comfyui import ANCHOR, SHOT, mia_session, ok, shot


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "2")
    monkeypatch.delenv(ANCHOR_WORKFLOW_ENV, raising=False)
    monkeypatch.setattr(ComfyUIProvider, "retry_backoff", 0.0)


@pytest.fixture
def comfy(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> Iterator[FakeComfyUI]:
    with FakeComfyUI() as server:
        monkeypatch.setenv("COMFYUI_URL", server.url)
        mia_session(isolated_home)
        yield server


def one_line(outcome: Outcome) -> str:
    assert outcome.code != 0
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    return outcome.error_lines[0]


def last_image(home: Path) -> dict[str, Any]:
    listed = json.loads(ok(run_cli(home, "session", "show", "--json")).stdout)
    images = listed["images"] if "images" in listed else listed["shots"]
    found: dict[str, Any] = json.loads(
        ok(run_cli(home, "show", str(images[-1]["id"]), "--json")).stdout
    )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ---------------------------------------------------------------------------------- server


def test_a_rate_limited_prompt_is_retried_and_then_made(
    comfy: FakeComfyUI, isolated_home: Path
) -> None:
    comfy.fail_next("/prompt", "rate_limit")
    made = shot(isolated_home, "--pose", "waving")
    assert made["status"] == "succeeded"
    assert len(comfy.calls("/prompt")) == 3  # the anchor's, the 429, the retry


def test_a_slow_render_is_waited_for(comfy: FakeComfyUI, isolated_home: Path) -> None:
    comfy.slow_polls = 4
    made = shot(isolated_home, "--pose", "waving")
    assert made["status"] == "succeeded"
    assert len(comfy.calls(f"/history/{made['gen_id']}")) == 5


@pytest.mark.parametrize(
    ("script", "kind", "said"),
    [
        ("server_error", "server", "ComfyUI server error (HTTP 500) after 2 retries"),
        ("rate_limit", "rate_limit", "ComfyUI rate limit hit after 2 retries (HTTP 429)"),
        ("execution_error", "server", "node 3 (KSampler): CUDA out of memory"),
        ("never_finishes", "timeout", "did not finish prompt"),
        ("no_outputs", "bad_response", "without an image"),
    ],
)
def test_a_failing_server_is_one_line_and_a_failed_row_of_its_kind(
    comfy: FakeComfyUI,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    kind: str,
    said: str,
) -> None:
    if script in ("server_error", "rate_limit"):
        comfy.fail_next("/prompt", script, times=3)
    else:
        comfy.next_prompt(script)
    monkeypatch.setenv(TIMEOUT_ENV, "0.3")
    line = one_line(run_cli(isolated_home, "shot", "--pose", "waving"))
    assert said in line
    failed = last_image(isolated_home)
    assert failed["status"] == "failed"
    assert kind in json.dumps(failed["error"])
    if script not in (
        "server_error",
        "rate_limit",
    ):  # queued: the prompt is named, to find it in ComfyUI
        prompt_id = next(iter(comfy.jobs.values().__reversed__())).prompt_id
        assert failed["response_id"] == prompt_id
        if script == "never_finishes":
            assert prompt_id in line and TIMEOUT_ENV in line


def test_a_workflow_the_server_refuses_names_the_node_and_why(
    comfy: FakeComfyUI, isolated_home: Path, tmp_path: Path
) -> None:
    graph = json.loads(SHOT.read_text())
    graph["11"]["inputs"]["image"] = "my-face.png"  # not uploaded: the server refuses it
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(graph))
    line = one_line(
        run_cli(isolated_home, "shot", "--pose", "waving", "--param", f"workflow={broken}")
    )
    assert "node 11 (LoadImage)" in line and "Invalid image file: my-face.png" in line
    assert "invalid_request" in json.dumps(last_image(isolated_home)["error"])


def test_no_server_says_to_start_comfyui_or_set_its_address(
    comfy: FakeComfyUI, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("COMFYUI_URL", address)
    line = one_line(run_cli(isolated_home, "shot", "--pose", "waving"))
    assert f"could not reach ComfyUI at {address}" in line and "COMFYUI_URL" in line
    assert "connection" in json.dumps(last_image(isolated_home)["error"])


def test_providers_shows_comfyui_configured_only_while_it_answers(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def listed() -> dict[str, Any]:
        rows = json.loads(ok(run_cli(isolated_home, "providers", "--json")).stdout)
        rows = rows["providers"] if isinstance(rows, dict) else rows
        return next(row for row in rows if row["name"] == "comfyui")

    with FakeComfyUI() as server:
        monkeypatch.setenv("COMFYUI_URL", server.url)
        row = listed()
        assert row["configured"] is True and server.url in row["detail"]
        assert row["billed"] is False
        assert "ComfyUI 0.3" in ok(run_cli(isolated_home, "providers")).stdout
    monkeypatch.setenv("COMFYUI_URL", f"http://127.0.0.1:{free_port()}")
    row = listed()
    assert row["configured"] is False and "start it or set COMFYUI_URL" in row["detail"]
    monkeypatch.setenv("COMFYUI_URL", "localhost:8188")
    assert "is not an http:// or https:// address" in listed()["detail"]


# ---------------------------------------------------------------------------------- workflow


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "no such file"),
        ("{not json", "is not JSON"),
        ('{"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{promt}}"}}}', "{{promt}}"),
        ('{"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}}}', "no {{prompt}}"),
        ('{"nodes": [], "links": []}', "not the API format"),
        ('{"1": {"class_type": "LoadImage", "inputs": {"x": "{{prompt}} {{image_2}}"}}}', "gaps"),
    ],
)
def test_a_bad_workflow_is_refused_with_one_line_before_anything_is_made(
    isolated_home: Path, tmp_path: Path, content: str | None, said: str
) -> None:
    workflow = tmp_path / "wf.json"
    if content is not None:
        workflow.write_text(content)
    ok(run_cli(isolated_home, "character", "new", "Mia", "--prompt", "a girl"))
    refused = run_cli(
        isolated_home,
        *("session", "new", "mia", "--provider", "comfyui", "--param", f"workflow={workflow}"),
    )
    line = one_line(refused)
    assert said in line and "wf.json" in line
    if "promt" in said:
        assert "node 1 (CLIPTextEncode)" in line


def test_no_workflow_at_all_and_a_bad_seed_are_refused(isolated_home: Path) -> None:
    ok(run_cli(isolated_home, "character", "new", "Mia", "--prompt", "a girl"))
    line = one_line(run_cli(isolated_home, "session", "new", "mia", "--provider", "comfyui"))
    assert "--param workflow=FILE" in line
    line = one_line(
        run_cli(
            isolated_home,
            *("session", "new", "mia", "--provider", "comfyui"),
            *("--param", f"workflow={SHOT}", "--param", "seed=-1"),
        )
    )
    assert "seed must be a whole number" in line


def test_a_size_no_latent_can_take_is_refused_before_anything_is_sent(isolated_home: Path) -> None:
    refused = run_cli(
        isolated_home,
        *("character", "new", "Mia", "--prompt", "a girl", "--provider", "comfyui"),
        *("--param", f"workflow={ANCHOR}", "--size", "1004x1004"),
    )
    assert "divisible by 8" in one_line(refused)


def test_an_unusable_time_limit_is_said_before_anything_is_queued(
    comfy: FakeComfyUI, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = len(comfy.jobs)
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    line = one_line(run_cli(isolated_home, "shot", "--pose", "waving"))
    assert f"{TIMEOUT_ENV}='soon' is not a number of seconds" in line
    assert len(comfy.jobs) == queued and not comfy.calls("/upload/image")
