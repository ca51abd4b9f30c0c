"""The comfyui provider in onmodel's other flows: checked takes, shot lists under a budget,
and the library called directly (slots, uploads by digest, the chosen output node)."""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_inprocess import run_cli
from fakecomfyui import FakeComfyUI
from onmodel.providers.base import GenerationRequest, InputImage, ProviderError
from onmodel.providers.comfyui import ComfyUIProvider
from onmodel.providers.comfyui.provider import ANCHOR_WORKFLOW_ENV, TIMEOUT_ENV, WORKFLOW_ENV
from test_provider_comfyui import ANCHOR, CAST, SHOT, mia_session, ok

SHEET = """\
hair: short bob
hair_color: "#c0392b"
palette: ["#c0392b", "#2e8b57"]
"""


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "2")
    monkeypatch.delenv(ANCHOR_WORKFLOW_ENV, raising=False)
    monkeypatch.setattr(ComfyUIProvider, "retry_backoff", 0.0)


@pytest.fixture
def comfy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComfyUI]:
    with FakeComfyUI() as server:
        monkeypatch.setenv("COMFYUI_URL", server.url)
        yield server


def test_a_comfyui_shot_is_checked_for_its_palette(
    comfy: FakeComfyUI, isolated_home: Path, tmp_path: Path
) -> None:
    sheet = tmp_path / "mia.yaml"
    sheet.write_text(SHEET)
    ok(
        run_cli(
            isolated_home,
            *("character", "new", "Mia", "--prompt", "a girl", "--sheet", str(sheet)),
            *("--provider", "comfyui", "--param", f"workflow={ANCHOR}"),
        )
    )
    ok(
        run_cli(
            isolated_home,
            *("session", "new", "mia", "--provider", "comfyui", "--param", f"workflow={SHOT}"),
        )
    )
    checked = run_cli(
        isolated_home,
        *("shot", "--pose", "waving", "--check", "palette", "--max-cost", "0.001"),
    )
    assert checked.code == 0, checked.stderr  # free: no --max-cost is too low for it
    assert "on model 100" in checked.stdout and "picked #2" in checked.stdout
    assert comfy.calls("/view")


def test_a_shot_list_runs_through_comfyui_and_free_shots_never_use_up_a_budget(
    comfy: FakeComfyUI, isolated_home: Path, tmp_path: Path
) -> None:
    mia_session(isolated_home)
    week = tmp_path / "week.yaml"
    week.write_text(
        textwrap.dedent(
            f"""\
            defaults:
              params: {{seed: 7}}
            shots:
              - pose: waving
              - pose: jumping
                params: {{workflow: {CAST}, seed: 8}}
              - expression: crying
                repeat: 2
            """
        )
    )
    ran = run_cli(isolated_home, "batch", "run", str(week), "--budget", "0.01", "--json")
    assert ran.code == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["succeeded"] == 4
    seeds = [graph["3"]["inputs"]["seed"] for graph in comfy.graphs[1:]]
    assert sorted(seeds) == [7, 7, 8, 8]  # repeat: 2 of seed 7 runs seeds 7 and 8
    slots = sorted(
        sum(1 for node in g.values() if node["class_type"] == "LoadImage") for g in comfy.graphs[1:]
    )
    assert slots == [2, 2, 2, 3]


def image(tmp_path: Path, name: str, colour: tuple[int, int, int], role: str) -> InputImage:
    from PIL import Image

    path = tmp_path / f"{name}.png"
    Image.new("RGB", (32, 32), colour).save(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return InputImage(role, path, digest, "image/png")


def test_the_library_fills_slots_uploads_each_image_once_and_reads_the_named_output(
    comfy: FakeComfyUI, tmp_path: Path
) -> None:
    graph = json.loads(CAST.read_text())
    graph["15"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    workflow = tmp_path / "two-outputs.json"
    workflow.write_text(json.dumps(graph))
    anchor = image(tmp_path, "anchor", (200, 30, 30), "anchor")
    parent = image(tmp_path, "parent", (30, 200, 30), "parent")
    provider = ComfyUIProvider()
    request = GenerationRequest(
        kind="shot",
        prompt="Mia waving",
        model="comfyui-workflow",
        params={"workflow": str(workflow), "output_node": 15, "negative_prompt": "hats"},
        inputs=(anchor, parent),
    )
    assert provider.input_limit(request.params) == 3
    assert provider.attached(request) == (anchor, parent)
    result = provider.generate(request)
    names = [f"onmodel/{item.sha256}.png" for item in (anchor, parent)]
    assert result.sent_params["image_slots"] == [names[0], names[1], names[0]]
    assert len(comfy.calls("/upload/image")) == 2  # the anchor once, though in two slots
    assert result.sent_params["output_node"] == "15"
    assert comfy.calls("/view")[-1].query["type"] == "temp"  # PreviewImage's, as asked
    assert "hats" in comfy.graphs[-1]["7"]["inputs"]["text"]
    assert result.format == "png" and result.gen_id == result.sent_params["prompt_id"]


def test_the_library_refuses_images_a_workflow_has_no_slots_for(tmp_path: Path) -> None:
    provider = ComfyUIProvider()
    anchor = image(tmp_path, "anchor", (200, 30, 30), "anchor")
    no_slots = GenerationRequest(
        kind="view",
        prompt="Mia from the side",
        model="comfyui-workflow",
        params={"workflow": str(ANCHOR)},
        inputs=(anchor,),
    )
    (problem,) = provider.request_problems(no_slots)
    assert "has no image slots" in problem
    with pytest.raises(ProviderError, match="has no image slots") as raised:
        provider.generate(no_slots)
    assert raised.value.kind == "invalid_request"


@pytest.mark.parametrize("how", ["variable", "param"])
def test_a_turnaround_runs_a_shot_workflow_with_the_anchor_in_its_slots(
    comfy: FakeComfyUI, isolated_home: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    mia_session(isolated_home)
    chosen: tuple[str, ...] = ()
    if how == "variable":
        monkeypatch.setenv(WORKFLOW_ENV, str(SHOT))
    else:
        chosen = ("--param", f"workflow={SHOT}")
    made = run_cli(
        isolated_home,
        *("character", "turnaround", "mia", "--provider", "comfyui", "--views", "side,back"),
        *chosen,
    )
    assert made.code == 0, made.stderr
    graphs = comfy.graphs[-2:]
    anchor_name = graphs[0]["10"]["inputs"]["image"]
    assert all(
        g["10"]["inputs"]["image"] == g["11"]["inputs"]["image"] == anchor_name for g in graphs
    )
    assert anchor_name.startswith("onmodel/")
