"""The comfyui provider through the CLI and the library, against a fake ComfyUI on 127.0.0.1:
a user's workflow filled in (prompt, seed, size, the references in their slots), queued,
polled and downloaded; what ran recorded with every image; each failure one line."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_inprocess import Outcome, run_cli
from fakecomfyui import FakeComfyUI
from onmodel.providers.comfyui import ComfyUIProvider
from onmodel.providers.comfyui.provider import ANCHOR_WORKFLOW_ENV, TIMEOUT_ENV, WORKFLOW_ENV

SHIPPED = Path(__file__).parents[1] / "src/onmodel/providers/comfyui/workflows"
ANCHOR = SHIPPED / "anchor-sdxl.json"  # text to image: no image slots
SHOT = SHIPPED / "ipadapter-sdxl.json"  # {{image_1}} (the anchor), {{image_2}} (the parent)
CAST = Path(__file__).parent / "data/comfyui/cast3.json"  # three slots


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waits that take a real server seconds take a fake one milliseconds."""
    monkeypatch.setenv(TIMEOUT_ENV, "2")
    monkeypatch.delenv(ANCHOR_WORKFLOW_ENV, raising=False)
    monkeypatch.setattr(ComfyUIProvider, "retry_backoff", 0.0)


@pytest.fixture
def comfy(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeComfyUI]:
    with FakeComfyUI() as server:
        monkeypatch.setenv("COMFYUI_URL", server.url)
        yield server


def ok(outcome: Outcome) -> Outcome:
    assert outcome.code == 0, outcome.stderr
    return outcome


def shot(home: Path, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ok(run_cli(home, "shot", *args, "--json")).stdout)
    return found


def mia_session(home: Path, workflow: Path = SHOT, *more: str) -> None:
    ok(
        run_cli(
            home,
            *("character", "new", "Mia", "--prompt", "a girl with red hair"),
            *("--provider", "comfyui", "--param", f"workflow={ANCHOR}"),
        )
    )
    ok(
        run_cli(
            home,
            *("session", "new", "mia", "--provider", "comfyui"),
            *("--param", f"workflow={workflow}", *more),
        )
    )


def image_count(home: Path) -> int:
    count: int = json.loads(ok(run_cli(home, "session", "show", "--json")).stdout)["image_count"]
    return count


def failure(outcome: Outcome) -> str:
    assert outcome.code != 0
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr
    return outcome.error_lines[0]


# ---------------------------------------------------------------------------------- shots


def test_an_anchor_then_shots_upload_the_references_into_the_workflow_slots(
    comfy: FakeComfyUI, isolated_home: Path
) -> None:
    mia_session(isolated_home)
    anchor_graph = comfy.graphs[0]
    assert "a girl with red hair" in anchor_graph["6"]["inputs"]["text"]
    assert not comfy.calls("/upload/image")  # a text-to-image anchor sends no image

    first = shot(isolated_home, "--pose", "waving")
    second = shot(isolated_home, "--pose", "jumping")
    uploads = comfy.calls("/upload/image")
    assert {u.form["subfolder"] for u in uploads} == {"onmodel"}
    assert {u.form["overwrite"] for u in uploads} == {"true"}
    anchor_sha = first["references"][0]["sha256"]
    # the first shot's parent is the anchor: both slots get it; the second sends its parent
    assert first["params"]["image_slots"] == [f"onmodel/{anchor_sha}.png"] * 2
    parent_sha = second["references"][1]["sha256"]
    assert second["params"]["image_slots"] == [
        f"onmodel/{anchor_sha}.png",
        f"onmodel/{parent_sha}.png",
    ]
    graph = comfy.graphs[-1]
    assert graph["10"]["inputs"]["image"] == f"onmodel/{anchor_sha}.png"
    assert graph["11"]["inputs"]["image"] == f"onmodel/{parent_sha}.png"
    assert "jumping" in graph["6"]["inputs"]["text"].lower()
    assert second["status"] == "succeeded" and second["cost_usd"] == "0"
    assert second["gen_id"] == second["params"]["prompt_id"] == second["response_id"]
    assert not comfy.rejected  # every graph sent is one the server accepts


def test_the_seed_is_filled_as_a_number_and_recorded_with_the_workflow_and_its_hash(
    comfy: FakeComfyUI, isolated_home: Path, tmp_path: Path
) -> None:
    workflow = tmp_path / "mine.json"
    shutil.copy(SHOT, workflow)
    mia_session(isolated_home, workflow)
    made = shot(isolated_home, "--pose", "waving", "--param", "seed=42", "--size", "1536x1024")
    graph = comfy.graphs[-1]
    assert graph["3"]["inputs"]["seed"] == 42  # an int, as KSampler takes it
    assert (graph["5"]["inputs"]["width"], graph["5"]["inputs"]["height"]) == (1536, 1024)
    params = made["params"]
    assert params["seed"] == 42 and (params["width"], params["height"]) == (1536, 1024)
    assert params["workflow"] == str(workflow)
    assert params["server"] == comfy.url and params["prompt_nodes"] == ["6"]
    first_hash = params["workflow_sha256"]

    data = json.loads(workflow.read_text())
    data["3"]["inputs"]["steps"] = 12
    workflow.write_text(json.dumps(data))
    again = shot(isolated_home, "--pose", "waving")
    assert again["params"]["workflow_sha256"] != first_hash
    drawn = again["params"]["seed"]  # none given: drawn, and recorded to run it again
    assert isinstance(drawn, int) and comfy.graphs[-1]["3"]["inputs"]["seed"] == drawn


def test_a_relative_workflow_path_is_taken_from_the_current_directory_and_recorded_whole(
    comfy: FakeComfyUI, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(ANCHOR, tmp_path / "anchor.json")
    monkeypatch.chdir(tmp_path)
    made = json.loads(
        ok(
            run_cli(
                isolated_home,
                *("character", "new", "Mia", "--prompt", "a girl", "--provider", "comfyui"),
                *("--param", "workflow=anchor.json", "--json"),
            )
        ).stdout
    )
    assert made["anchor_image_id"] == 1
    shown = json.loads(ok(run_cli(isolated_home, "show", "1", "--json")).stdout)
    assert shown["params"]["workflow"] == str(tmp_path / "anchor.json")


def test_a_cast_shot_fills_the_slots_in_order_and_too_many_is_refused_before_recording(
    comfy: FakeComfyUI, isolated_home: Path
) -> None:
    for name in ("Rin", "Park"):
        kind = "set" if name == "Park" else "character"
        ok(
            run_cli(
                isolated_home,
                *("character", "new", name, "--prompt", f"{name} look", "--kind", kind),
                *("--provider", "comfyui", "--param", f"workflow={ANCHOR}"),
            )
        )
    mia_session(isolated_home, CAST, "--with", "rin", "--with", "park")
    made = shot(isolated_home, "--pose", "talking", "--with", "rin", "--set", "park")
    anchors = [ref["sha256"] for ref in made["references"]]
    assert [ref["role"] for ref in made["references"]] == ["anchor", "anchor", "anchor"]
    assert made["params"]["image_slots"] == [f"onmodel/{sha}.png" for sha in anchors]
    graph = comfy.graphs[-1]
    assert [graph[n]["inputs"]["image"] for n in ("10", "11", "12")] == [
        f"onmodel/{sha}.png" for sha in anchors
    ]

    queued, recorded = len(comfy.jobs), image_count(isolated_home)
    refused = run_cli(isolated_home, "shot", "--pose", "talking", "--with", "rin", "--set", "park")
    line = failure(refused)  # three anchors and the parent: four images for three slots
    assert "needs 4 input images" in line and "at most 3" in line
    assert "the parent (image" in line  # what did not fit, named
    assert len(comfy.jobs) == queued and image_count(isolated_home) == recorded


def test_an_anchor_with_a_workflow_that_needs_images_is_refused_before_recording(
    comfy: FakeComfyUI, isolated_home: Path
) -> None:
    refused = run_cli(
        isolated_home,
        *("character", "new", "Mia", "--prompt", "a girl", "--provider", "comfyui"),
        *("--param", f"workflow={SHOT}"),
    )
    assert "anchor_workflow" in failure(refused)
    assert not comfy.jobs
    assert "mia" not in ok(run_cli(isolated_home, "character", "list")).stdout.lower()
    # the anchor's own graph beside the shots' one
    ok(
        run_cli(
            isolated_home,
            *("character", "new", "Mia", "--prompt", "a girl", "--provider", "comfyui"),
            *("--param", f"workflow={SHOT}", "--param", f"anchor_workflow={ANCHOR}"),
        )
    )
    assert len(comfy.jobs) == 1


def test_the_default_workflows_come_from_the_environment(
    comfy: FakeComfyUI, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ANCHOR_WORKFLOW_ENV, str(ANCHOR))
    monkeypatch.setenv(WORKFLOW_ENV, str(SHOT))
    ok(
        run_cli(
            isolated_home,
            *("character", "new", "Mia", "--prompt", "a girl", "--provider", "comfyui"),
        )
    )
    ok(run_cli(isolated_home, "session", "new", "mia", "--provider", "comfyui"))
    made = shot(isolated_home, "--pose", "waving")
    assert made["params"]["workflow"] == str(SHOT) and len(made["params"]["image_slots"]) == 2


def test_a_password_in_the_server_address_is_never_recorded_or_shown(
    comfy: FakeComfyUI, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_url = comfy.url.replace("http://", "http://studio:hunter2@")
    monkeypatch.setenv("COMFYUI_URL", secret_url)
    mia_session(isolated_home)
    made = shot(isolated_home, "--pose", "waving")
    assert made["params"]["server"] == comfy.url
    listed = ok(run_cli(isolated_home, "providers", "--json")).stdout
    exported = ok(run_cli(isolated_home, "show", str(made["id"]), "--json")).stdout
    assert "hunter2" not in listed + exported


def test_a_session_s_relative_workflow_still_runs_from_another_folder(
    comfy: FakeComfyUI, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session stores the workflow's whole path: a shot run later from elsewhere still
    finds it (as typed, ``shot.json`` would name a file of the folder the shot runs in)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(SHOT, project / "shot.json")
    mia_session(isolated_home, SHOT, "--slug", "week")
    monkeypatch.chdir(project)
    moved = ok(run_cli(isolated_home, "session", "set", "week", "--param", "workflow=shot.json"))
    assert str(project / "shot.json") in moved.stdout
    monkeypatch.chdir(tmp_path)  # another folder, with no shot.json in it
    made = shot(isolated_home, "--pose", "waving")
    assert made["params"]["workflow"] == str(project / "shot.json")


def test_a_shot_list_s_workflow_is_the_list_s_file(
    comfy: FakeComfyUI, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``params: {workflow: shot.json}`` in a list names the file beside the list, as its
    ``refs`` do, wherever the list is run from."""
    lists = tmp_path / "lists"
    lists.mkdir()
    shutil.copy(SHOT, lists / "shot.json")
    (lists / "week.yaml").write_text(
        "defaults:\n  params: {workflow: shot.json}\nshots:\n  - pose: waving\n"
    )
    mia_session(isolated_home)
    monkeypatch.chdir(tmp_path)
    ok(run_cli(isolated_home, "batch", "run", str(lists / "week.yaml")))
    made = json.loads(ok(run_cli(isolated_home, "show", "2", "--json")).stdout)
    assert made["params"]["workflow"] == str(lists / "shot.json")


def test_a_shipped_example_is_named_and_recorded_with_its_file(
    comfy: FakeComfyUI, isolated_home: Path
) -> None:
    """``workflow=example:NAME`` finds a shipped example wherever onmodel is installed; a
    name that is none is one line listing the ones there are."""
    ok(
        run_cli(
            isolated_home,
            *("character", "new", "Mia", "--prompt", "a girl", "--provider", "comfyui"),
            *("--param", "workflow=example:anchor-sdxl"),
        )
    )
    ok(
        run_cli(
            isolated_home,
            *("session", "new", "mia", "--provider", "comfyui"),
            *("--param", "workflow=example:ipadapter-sdxl"),
        )
    )
    made = shot(isolated_home, "--pose", "waving")
    assert made["params"]["workflow"] == str(SHOT)
    assert made["params"]["workflow_sha256"] == hashlib.sha256(SHOT.read_bytes()).hexdigest()
    wrong = run_cli(isolated_home, "shot", "--pose", "x", "--param", "workflow=example:nope")
    assert wrong.code != 0 and len(wrong.error_lines) == 1
    assert "no example workflow example:nope (shipped: example:anchor-sdxl" in wrong.stderr


def test_a_parameter_comfyui_has_no_use_for_is_refused(
    comfy: FakeComfyUI, isolated_home: Path
) -> None:
    mia_session(isolated_home)
    queued = len(comfy.jobs)
    typo = run_cli(isolated_home, "shot", "--pose", "waving", "--param", "sede=3")
    assert typo.code == 2 and len(typo.error_lines) == 1
    assert "comfyui does not take sede (it takes workflow, anchor_workflow, seed" in typo.stderr
    assert len(comfy.jobs) == queued
