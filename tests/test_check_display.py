"""Checks where a user looks (issue 14): a drifted take's badge and the trait that drifted show
in ``show``, ``tree``, the web pages and the export; an on-model take reads "on model"; a check
that could not be made reads "check failed"; the take a retake loop picked is marked "pick";
and the JSON of each carries the checks. A stand-in checker scores takes as the test scripts
them, so what is shown is tested apart from how a score is measured."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from rich.console import Console

from cli_inprocess import run_cli
from onmodel import checkers
from onmodel.checkers.base import (
    Checker,
    CheckerError,
    CheckOutcome,
    CheckSubject,
    TraitResult,
    Verdict,
)
from onmodel.cli.render import print_lineage
from onmodel.export import export_session
from onmodel.presentation import session_view
from onmodel.studio import Studio
from onmodel.web.app import GalleryApp
from test_web_long import get, statements  # noqa: F401  (statements: a fixture)

PROMPT = "a cheerful girl with orange hair and green eyes"


class Scorer(Checker):
    """Scores the n-th check it makes ``scores[n]``; below 80 the hair has drifted."""

    name = "display"
    scores: ClassVar[list[int]] = []
    made: ClassVar[int] = 0

    def check(self, subject: CheckSubject) -> CheckOutcome:
        score = type(self).scores[type(self).made % len(type(self).scores)]
        type(self).made += 1
        hair = (
            TraitResult("hair_color", Verdict.SAME)
            if score >= 80
            else TraitResult(
                "hair_color", Verdict.DRIFTED, expected="#c9642b", measured="#3b5ba5", delta_e=38.2
            )
        )
        return CheckOutcome(score=score, traits=[hair, TraitResult("eye_color", Verdict.SAME)])


class Broken(Checker):
    """Never gets an answer: every check it makes is a failed check on record."""

    name = "broken"

    def check(self, subject: CheckSubject) -> CheckOutcome:
        raise CheckerError("the judge refused to look", kind="refusal")


@dataclass(frozen=True)
class Made:
    """A session whose first shot has two takes (41: drifted, 93: on model and picked) and
    whose second shot's check failed."""

    slug: str
    drifted: int
    picked: int
    failed: int


@pytest.fixture
def scorer(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Scorer]]:
    for cls in (Scorer, Broken):
        monkeypatch.setitem(checkers.FACTORIES, cls.name, lambda context, cls=cls: cls(context))
    Scorer.made, Scorer.scores = 0, [41, 93]
    yield Scorer


@pytest.fixture
def made(studio: Studio, scorer: type[Scorer]) -> Made:
    studio.create_character("Mia", prompt=PROMPT)
    session = studio.start_session("mia")
    plan = session.plan(pose="playing guitar")
    report = studio.shoot_until_on_model(plan, checker="display", takes=2)
    drifted, picked = (take.image.id for take in report.takes)
    assert report.pick is not None and report.pick.id == picked
    failed = studio.session().shot(pose="waving").id
    studio.check(failed, "broken")
    return Made(session.slug, drifted, picked, failed)


def line_of(text: str, image_id: int) -> str:
    """The line of a tree that draws ``image_id``."""
    return next(line for line in text.splitlines() if f"#{image_id} " in line)


# --------------------------------------------------------------------------- the terminal


def test_show_lists_every_check_with_its_badge_score_and_traits(
    isolated_home: Path, made: Made
) -> None:
    drifted = run_cli(isolated_home, "show", str(made.drifted))
    assert drifted.code == 0, drifted.stderr
    text = drifted.stdout
    assert "checks:" in text and "drifted 41: hair colour" in text
    assert "display: 41/100 (pass mark 80) · version 1 · free" in text
    assert "✗ hair colour: drifted (#c9642b → #3b5ba5, ΔE 38.2)" in text
    assert "✓ eye colour: same" in text
    assert "picked:" not in text

    picked = run_cli(isolated_home, "show", str(made.picked)).stdout
    assert "on model 93" in picked and "picked:" in picked
    failed = run_cli(isolated_home, "show", str(made.failed)).stdout
    assert "check failed" in failed and "the judge refused to look" in failed

    data = json.loads(run_cli(isolated_home, "show", str(made.drifted), "--json").stdout)
    assert data["picked_at"] is None
    (check,) = data["checks"]
    assert (check["score"], check["passed"], check["drifted"]) == (41, False, ["hair colour"])
    picked_data = json.loads(run_cli(isolated_home, "show", str(made.picked), "--json").stdout)
    assert picked_data["picked_at"] is not None and picked_data["checks"][0]["score"] == 93


def test_an_unchecked_image_says_how_to_check_it(isolated_home: Path, made: Made) -> None:
    anchor = run_cli(isolated_home, "tree", made.slug, "--json")
    root = json.loads(anchor.stdout)[0]
    shown = run_cli(isolated_home, "show", str(root["id"])).stdout
    assert "checks: none (onmodel check IMAGE)" in shown
    assert root["check"] is None and root["picked"] is False


def test_tree_marks_each_take_with_its_newest_check_and_the_pick(
    isolated_home: Path, made: Made
) -> None:
    drawn = run_cli(isolated_home, "tree", made.slug, "--all")
    assert drawn.code == 0, drawn.stderr
    assert "drifted 41: hair colour" in line_of(drawn.stdout, made.drifted)
    assert "pick" not in line_of(drawn.stdout, made.drifted)
    assert "on model 93 · pick" in line_of(drawn.stdout, made.picked)
    assert "check failed" in line_of(drawn.stdout, made.failed)

    entries = {e["id"]: e for e in json.loads(run_cli(isolated_home, "tree", "--json").stdout)}
    assert entries[made.drifted]["check"]["drifted"] == ["hair colour"]
    assert entries[made.drifted]["picked"] is False
    assert entries[made.picked]["check"]["score"] == 93 and entries[made.picked]["picked"]
    assert entries[made.failed]["check"]["status"] == "failed"


def test_the_newest_finished_check_is_the_one_a_tree_shows(
    isolated_home: Path, studio: Studio, made: Made
) -> None:
    Scorer.made, Scorer.scores = 0, [97]
    studio.check(made.drifted, "display")  # checked again, and this time on model
    line = line_of(run_cli(isolated_home, "tree", made.slug, "--all").stdout, made.drifted)
    assert "on model 97" in line and "drifted" not in line


# --------------------------------------------------------------------------- the web pages


def test_session_page_cards_and_grid_tiles_carry_a_badge_per_tone(
    studio: Studio, made: Made
) -> None:
    app = GalleryApp(studio)
    page = get(app, f"/sessions/{made.slug}").text
    drifted = card(page, made.drifted)
    assert 'class="check-badge tone-drift" title="display: 41/100 (pass mark 80)"' in drifted
    assert "drifted 41: hair colour" in drifted
    assert '<li class="tone-drift">✗ hair colour: drifted' in drifted  # the per-trait list
    assert "pick" not in drifted
    picked = card(page, made.picked)
    assert "tone-ok" in picked and "on model 93" in picked and 'class="badge pick"' in picked
    assert "tone-failed" in card(page, made.failed) and "check failed" in card(page, made.failed)

    grid = get(app, f"/sessions/{made.slug}/grid").text
    assert "drifted 41: hair colour" in grid and "on model 93" in grid and "check failed" in grid
    assert grid.count('class="badge pick"') == 1


def test_image_page_lists_every_check_with_its_traits(studio: Studio, made: Made) -> None:
    Scorer.made, Scorer.scores = 0, [97]
    studio.check(made.drifted, "display")
    app = GalleryApp(studio)
    page = get(app, f"/images/{made.drifted}").text
    listed = page[page.index('<section class="panel" aria-label="Checks"') :]
    listed = listed[: listed.index("</section>")]
    assert listed.index("drifted 41: hair colour") < listed.index("on model 97")  # oldest first
    assert "✗ hair colour: drifted (#c9642b → #3b5ba5, ΔE 38.2)" in listed
    assert listed.count("✓ eye colour: same") == 2

    data = json.loads(get(app, f"/api/images/{made.drifted}").text)
    assert [c["score"] for c in data["checks"]] == [41, 97] and data["picked_at"] is None


def card(html: str, image_id: int) -> str:
    start = html.index(f'id="image-{image_id}"')
    return html[start : html.index("</article>", start)]


# --------------------------------------------------------------------------- the export


def test_export_shows_badges_and_writes_every_check_to_series_json(
    studio: Studio, made: Made, tmp_path: Path
) -> None:
    result = export_session(studio, made.slug, tmp_path / "out")
    html = result.index.read_text(encoding="utf-8")
    assert "drifted 41: hair colour" in card(html, made.drifted)
    assert "on model 93" in card(html, made.picked) and "pick" in card(html, made.picked)
    assert "check failed" in card(html, made.failed)

    series = json.loads(result.manifest.read_text(encoding="utf-8"))
    images = {image["id"]: image for image in series["images"]}
    assert images[made.drifted]["checks"][0]["drifted"] == ["hair colour"]
    assert images[made.picked]["picked_at"] is not None
    assert images[made.drifted]["picked_at"] is None
    assert images[made.failed]["checks"][0]["error"]["type"] == "refusal"


# --------------------------------------------------------------------------- cost


def test_badges_cost_a_query_per_page_not_per_image(
    studio: Studio,
    scorer: type[Scorer],
    statements: list[str],  # noqa: F811  (the fixture imported above)
) -> None:
    """A session page and a drawn tree read the same statements for 3 checked shots as for
    30: checks are read a page (or a chunk of lines) at a time."""
    studio.create_character("Mia", prompt=PROMPT)
    session = studio.start_session("mia")
    links = GalleryApp(studio).links
    costs: list[tuple[int, int]] = []
    for size in (3, 30):
        while len(studio.session_images(session)) < size:
            shot = session.shot(pose=f"pose {len(studio.session_images(session))}")
            studio.check(shot, "display")
        fresh = studio.session(session.id)
        statements.clear()
        view = session_view(fresh, links)
        page = len(statements)
        assert sum(card.check is not None for card in view.images) == size
        statements.clear()
        out = io.StringIO()
        lines = fresh.lineage().view()
        print_lineage(Console(file=out), lines, studio.lookups.images_by_id, None, lambda _: "")
        assert out.getvalue().count("drifted 41") == size // 2 + size % 2
        costs.append((page, len(statements)))
    assert costs[0] == costs[1], costs
