"""Turnarounds (issue 14): reference views drawn from the anchor, one request each, recorded
as images of kind ``view``; later shots attach the anchor, the parent, then as many views as
the provider and the model take."""

from __future__ import annotations

import json

import pytest
from PIL import Image as PILImage

from cli_inprocess import run_cli, snapshot
from onmodel.capabilities import default_model
from onmodel.errors import GenerationError, UsageError
from onmodel.handles import Character, Image
from onmodel.providers import FACTORIES
from onmodel.providers.base import (
    VIEWS,
    GenerationRequest,
    GenerationResult,
    ProviderError,
)
from onmodel.providers.preview import PreviewProvider
from onmodel.sheet import ShotRequest
from onmodel.studio import Studio


class SideFails(PreviewProvider):
    """The preview, except that a side view is refused (or, ``kind="quota"``, every view)."""

    name = "side-fails"
    kind = "moderation"

    def generate(self, request: GenerationRequest) -> GenerationResult:
        if request.view == "side" or (self.kind == "quota" and request.view):
            raise ProviderError("refused by the test", kind=self.kind)
        return super().generate(request)


@pytest.fixture
def mia(studio: Studio) -> Character:
    return studio.create_character("Mia", prompt="a girl with red hair and green eyes")


def roles(image: Image) -> list[tuple[str, int | None]]:
    return [(reference.role, reference.image_id) for reference in image.references]


def test_a_turnaround_draws_one_view_per_name_from_the_anchor(
    studio: Studio, mia: Character
) -> None:
    views = studio.turnaround(mia)
    anchor_id = mia.anchor_image_id
    assert [view.request.view for view in views] == list(VIEWS)
    for view in views:
        assert view.succeeded and view.kind == "view"
        assert view.session_id is None and view.parent_id == anchor_id
        assert roles(view) == [("anchor", anchor_id)]
        assert view.label == f"{view.request.view} view"
        assert view.request.view in view.prompt  # the view template names the angle
    assert len({view.sha256 for view in views}) == len(VIEWS)  # each drawn differently
    assert [view.id for view in studio.views(mia)] == [view.id for view in views]


def test_later_shots_attach_the_anchor_the_parent_and_the_views(
    studio: Studio, mia: Character
) -> None:
    views = [view.id for view in studio.turnaround(mia)]
    session = studio.start_session(mia)
    first = session.shot(pose="waving")
    assert roles(first) == [("anchor", mia.anchor_image_id)] + [("view", v) for v in views]
    second = session.shot(pose="running")
    assert roles(second) == [
        ("anchor", mia.anchor_image_id),
        ("parent", first.id),
        *(("view", v) for v in views),
    ]
    plan = studio.plan_shot(session, ShotRequest(pose="sitting"))  # a dry run lists them
    assert [item["role"] for item in plan.to_dict()["inputs"]] == ["anchor", "parent"] + [
        "view"
    ] * len(views)
    assert "the first is the anchor, and 4 turnaround views show it" in second.prompt
    assert "reference images" not in studio.image(views[0]).prompt  # a view sends the anchor


def test_only_the_views_that_fit_the_model_s_limit_are_attached(
    studio: Studio, mia: Character
) -> None:
    studio.paths.models_file.write_text(f"models:\n  {default_model()}:\n    max_input_images: 3\n")
    views = [view.id for view in studio.turnaround(mia)]
    session = studio.start_session(mia)
    first = session.shot(pose="waving")
    assert [role for role, _ in roles(first)] == ["anchor", "view", "view"]
    assert [key for _, key in roles(first)][1:] == views[:2]  # in VIEWS order: front first
    second = session.shot(pose="running")
    assert [role for role, _ in roles(second)] == ["anchor", "parent", "view"]

    ref = studio.paths.home / "ref.png"
    PILImage.new("RGB", (8, 8), (9, 9, 9)).save(ref)
    third = session.shot(pose="sitting", refs=[ref])  # the user's file before any view
    assert [role for role, _ in roles(third)] == ["anchor", "parent", "extra"]


def test_a_failed_view_is_recorded_and_the_others_are_drawn(
    studio: Studio, mia: Character, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(FACTORIES, "side-fails", lambda context: SideFails(context))
    made = studio.turnaround(mia, provider="side-fails")
    assert [view.status for view in made] == ["succeeded", "succeeded", "failed", "succeeded"]
    failed = made[2]
    assert failed.kind == "view" and failed.error_message == "refused by the test"
    assert failed.request.view == "side" and failed.parent_id == mia.anchor_image_id
    assert [view.request.view for view in studio.views(mia)] == ["front", "three-quarter", "back"]

    outcome = run_cli(
        studio.paths.home, "character", "turnaround", "mia", "--provider", "side-fails"
    )
    assert outcome.code == 1
    assert outcome.error_lines == [
        "error: 1 of 4 views failed; draw them again with: "
        "onmodel character turnaround mia --views side"
    ]

    monkeypatch.setitem(FACTORIES, "side-fails", lambda context: PreviewProvider(context))
    again = studio.retry(failed)  # the provider answers now
    assert (again.kind, again.status, again.retry_of_id) == ("view", "succeeded", failed.id)
    assert again.request.view == "side" and again.parent_id == mia.anchor_image_id
    assert [view.request.view for view in studio.views(mia)] == [
        "front",
        "three-quarter",
        "side",
        "back",
    ]


def test_an_exhausted_quota_stops_the_turnaround(
    studio: Studio, mia: Character, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SideFails, "kind", "quota")
    monkeypatch.setitem(FACTORIES, "side-fails", lambda context: SideFails(context))
    with pytest.raises(GenerationError, match="refused by the test"):
        studio.turnaround(mia, provider="side-fails")
    listed = [(item.image.kind, item.image.status) for item in studio.images()]
    assert listed == [("view", "failed"), ("anchor", "succeeded")]  # one view, recorded


def test_views_count_only_from_the_current_anchor_newest_and_shown(
    studio: Studio, mia: Character
) -> None:
    first = studio.turnaround(mia, views=["front", "side"])
    again = studio.turnaround(mia, views=["side"])
    assert [view.id for view in studio.views(mia)] == [first[0].id, again[0].id]
    studio.hide_images([again[0]])
    assert [view.id for view in studio.views(mia)] == [first[0].id, first[1].id]

    shot = studio.start_session(mia).shot(pose="waving")
    studio.promote_anchor(shot)
    assert studio.views(mia) == []  # drawn from another anchor
    after = studio.start_session(mia).shot(pose="sitting")
    assert [role for role, _ in roles(after)] == ["anchor"]


def test_unknown_views_are_refused_before_anything_is_recorded(
    studio: Studio, mia: Character
) -> None:
    before = snapshot(studio.paths.home)
    with pytest.raises(UsageError, match="unknown view 'top'; choose from: front"):
        studio.turnaround(mia, views=["front", "top"])
    with pytest.raises(UsageError, match="choose from"):
        studio.turnaround(mia, views=[" "])
    outcome = run_cli(studio.paths.home, "character", "turnaround", "mia", "--views", "front,top")
    assert outcome.code == 2 and "unknown view 'top'" in outcome.stderr
    assert snapshot(studio.paths.home) == before


def test_the_cli_draws_views_and_show_lists_them(studio: Studio, mia: Character) -> None:
    outcome = run_cli(studio.paths.home, "character", "turnaround", "mia", "--views", "side,back")
    assert outcome.code == 0, outcome
    lines = outcome.stdout.splitlines()
    assert len(lines) == 2 and "view 'side view'" in lines[0] and "view 'back view'" in lines[1]
    side, back = (view.id for view in studio.views(mia))
    shown = run_cli(studio.paths.home, "character", "show", "mia")
    assert f"views: side #{side}, back #{back}" in shown.stdout
    data = json.loads(run_cli(studio.paths.home, "character", "show", "mia", "--json").stdout)
    assert data["views"] == {"side": side, "back": back}


def test_a_paid_provider_without_its_key_is_refused_before_any_view(
    studio: Studio, mia: Character
) -> None:
    before = snapshot(studio.paths.home)
    with pytest.raises(UsageError, match="needs an API key"):
        studio.turnaround(mia, provider="openai-images")
    assert snapshot(studio.paths.home) == before
