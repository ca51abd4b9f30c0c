"""``onmodel cost`` (issue 13): the anchor counted, totals by character, session and month,
added up by the database exactly, never a row per image."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from cli_inprocess import assert_refused_cleanly, run_cli
from onmodel.handles import Image
from onmodel.providers import FACTORIES
from onmodel.sheet import ShotRequest
from onmodel.store import writes
from onmodel.studio import Studio
from test_batch_support import REFUSE_WORD, FakeImages


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeImages:
    images = FakeImages()
    monkeypatch.setitem(FACTORIES, "openai-images", lambda context: images)
    return images


def made(studio: Studio, name: str, slug: str, poses: list[str]) -> list[Image]:
    """A character drawn by the (fake, billed) API, a session, and its shots."""
    character = studio.create_character(name, prompt="a girl", provider="openai-images")
    studio.start_session(character, slug=slug, provider="openai-images", params={"quality": "low"})
    shots = [studio.shot(slug, ShotRequest(pose=pose)) for pose in poses]
    anchor = character.anchor
    assert anchor is not None
    return [anchor, *shots]


def spent(images: list[Image]) -> Decimal:
    return sum((Decimal(i.cost_usd) for i in images if i.cost_usd is not None), Decimal(0))


def cli_json(studio: Studio, *args: str) -> Any:
    outcome = run_cli(studio.paths.home, *args, "--json")
    assert outcome.code == 0, outcome
    return json.loads(outcome.stdout)


def test_a_sessions_cost_names_its_characters_anchor_beside_it(
    studio: Studio, fake: FakeImages
) -> None:
    anchor, *shots = made(studio, "Mia", "week", ["one", "two"])
    assert Decimal(anchor.cost_usd or "0") > 0  # the anchor was paid for
    out = run_cli(studio.paths.home, "cost").stdout  # the current session
    assert out.startswith(f"week: ${spent(shots)} over 2 images")
    assert f"+ mia anchor: ${anchor.cost_usd} over 1 image (in no session)" in out
    assert f"with it: ${spent([anchor, *shots])}" in out
    report = cli_json(studio, "cost", "week")
    assert report["images"] == 2 and report["total_usd"] == str(spent(shots))
    assert report["anchor"]["total_usd"] == anchor.cost_usd
    assert report["with_anchor_usd"] == str(spent([anchor, *shots]))


def test_everything_includes_every_anchor(studio: Studio, fake: FakeImages) -> None:
    mia = made(studio, "Mia", "week", ["one"])
    rin = made(studio, "Rin", "rin-week", ["one", "two"])
    studio.current.forget("rin-week")  # no current session: everything
    report = studio.cost()
    assert report.scope == "everything" and report.images == 5
    assert report.total == spent(mia + rin)


def test_totals_by_character_session_and_month(studio: Studio, fake: FakeImages) -> None:
    mia = made(studio, "Mia", "week", ["one", "two"])
    rin = made(studio, "Rin", "rin-week", ["one"])
    with pytest.raises(Exception, match="image"):
        studio.shot("week", ShotRequest(pose=REFUSE_WORD))  # failed: its cost is unknown
    writes.update_image(
        studio.engine, mia[1].id, {"finished_at": datetime(2026, 1, 31, 23, 59, tzinfo=UTC)}
    )

    by_character = cli_json(studio, "cost", "--by", "character")
    lines = {line["label"]: line for line in by_character["lines"]}
    assert lines["mia"]["total_usd"] == str(spent(mia)) and lines["mia"]["images"] == 4
    assert lines["mia"]["unknown_cost_images"] == 1
    assert lines["rin"]["total_usd"] == str(spent(rin))
    assert by_character["total"]["total_usd"] == str(spent(mia + rin))
    assert by_character["total"]["images"] == 6

    by_session = cli_json(studio, "cost", "--by", "session")
    totals = {line["label"]: line["total_usd"] for line in by_session["lines"]}
    assert totals == {
        "mia anchor": mia[0].cost_usd,
        "rin anchor": rin[0].cost_usd,
        "week": str(spent(mia[1:])),
        "rin-week": str(spent(rin[1:])),
    }

    by_month = cli_json(studio, "cost", "--by", "month")
    now = datetime.now(UTC)
    months = {line["label"]: line["total_usd"] for line in by_month["lines"]}
    assert months == {
        "2026-01": mia[1].cost_usd,
        f"{now:%Y-%m}": str(spent(mia + rin) - spent([mia[1]])),
    }
    one = cli_json(studio, "cost", "week", "--by", "month")
    assert one["scope"] == "week" and one["total"]["images"] == 3

    text = run_cli(studio.paths.home, "cost", "--by", "character").stdout
    assert "everything by character:" in text and "1 of unknown cost (not counted)" in text
    assert f"total: ${spent(mia + rin)} over 6 images" in text
    refused = run_cli(studio.paths.home, "cost", "--by", "year")
    assert_refused_cleanly(refused)
    assert "character, session, month" in refused.stderr


def test_costs_add_up_exactly(studio: Studio, fake: FakeImages) -> None:
    images = made(studio, "Mia", "week", ["one", "two", "three"])
    exact = ["0.1", "0.2", "0.3000000001", "12.3456789012"]
    for image, cost in zip(images, exact, strict=True):
        writes.update_image(studio.engine, image.id, {"cost_usd": cost})
    total = studio.cost_breakdown("character").total.total
    assert total == Decimal("12.9456789013")  # summed as floats: 12.945678901299999
    assert str(studio.cost("week").total) == "12.8456789013"


def test_a_total_is_a_few_statements_whatever_the_number_of_images(
    studio: Studio, fake: FakeImages
) -> None:
    made(studio, "Mia", "week", ["one"])

    def statements() -> int:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(studio.engine, "before_cursor_execute", listener)
        try:
            studio.cost("week")
            for by in ("character", "session", "month"):
                studio.cost_breakdown(by)  # type: ignore[arg-type]
        finally:
            event.remove(studio.engine, "before_cursor_execute", listener)
        assert all("GROUP BY" in s for s in seen if "sum(" in s.lower())
        return len(seen)

    few = statements()
    for n in range(10):
        studio.shot("week", ShotRequest(pose=f"more {n}"))
    assert statements() == few
