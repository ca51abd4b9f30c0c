"""Retakes: ``shot --check --takes K`` makes takes until one is on model, keeps every take as
a sibling with its number and score, and picks the best (issue 14). A stand-in checker scores
takes as the test scripts them, so the loop is tested apart from how a score is measured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest

from cli_inprocess import run_cli
from onmodel import checkers
from onmodel.checkers.base import Checker, CheckOutcome, CheckSubject, TraitResult, Verdict
from onmodel.studio import Studio

PROMPT = "a cheerful girl with orange hair and green eyes"


class TakeScorer(Checker):
    """Scores the n-th check it makes ``scores[n]``; a low score names the hair as drifted."""

    name = "takes"
    scores: ClassVar[list[int]] = []
    made: ClassVar[int] = 0

    def check(self, subject: CheckSubject) -> CheckOutcome:
        score = type(self).scores[type(self).made]
        type(self).made += 1
        verdict = Verdict.SAME if score >= 80 else Verdict.DRIFTED
        return CheckOutcome(score=score, traits=[TraitResult("hair_color", verdict)])


class PaidScorer(TakeScorer):
    name = "paid"
    billed = True

    def estimate_max_cost(self, subject: CheckSubject) -> Decimal | None:
        return Decimal("0.01")

    def cost(self, usage: dict[str, object] | None) -> str | None:
        return "0.01"


@pytest.fixture
def scorer(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[TakeScorer]]:
    for cls in (TakeScorer, PaidScorer):
        monkeypatch.setitem(checkers.FACTORIES, cls.name, lambda context, cls=cls: cls(context))
    TakeScorer.made = 0
    yield TakeScorer


def new_session(studio: Studio) -> None:
    studio.create_character("Mia", prompt=PROMPT)
    studio.start_session("mia")


def test_takes_stop_at_the_first_on_model_one_which_is_picked_and_becomes_the_head(
    studio: Studio, scorer: type[TakeScorer]
) -> None:
    new_session(studio)
    scorer.scores = [41, 93, 99]
    plan = studio.session().plan(pose="playing guitar")
    report = studio.shoot_until_on_model(plan, checker="takes", takes=3)

    first, second = (take.image for take in report.takes)
    assert len(report.takes) == 2 and report.passed
    assert (first.variation, second.variation, second.row.variations) == (1, 2, 3)
    assert first.row.parent_id == second.row.parent_id  # siblings, not a chain
    assert report.pick is not None and report.pick.id == second.id
    assert report.pick.row.picked_at is not None and first.row.picked_at is None
    assert studio.session().head_image_id == second.id
    assert [c.score for c in studio.checks_of([first.id])[first.id]] == [41]


def test_when_no_take_passes_the_best_is_picked_and_the_head_stays_on_it_not_the_last(
    studio: Studio, scorer: type[TakeScorer]
) -> None:
    new_session(studio)
    scorer.scores = [40, 72, 55]
    report = studio.shoot_until_on_model(
        studio.session().plan(pose="waving"), checker="takes", takes=3, min_score=90
    )
    assert len(report.takes) == 3 and not report.passed
    assert report.pick is not None and report.pick.id == report.takes[1].image.id
    assert studio.session().head_image_id == report.pick.id
    assert report.best_check is not None and report.best_check.min_score == 90


def test_max_cost_stops_the_loop_before_a_take_it_could_not_pay_for(
    studio: Studio, scorer: type[TakeScorer]
) -> None:
    new_session(studio)
    scorer.scores = [10, 10, 10]
    report = studio.shoot_until_on_model(
        studio.session().plan(pose="waving"),
        checker="paid",
        takes=3,
        max_cost=Decimal("0.015"),
    )
    assert len(report.takes) == 2  # take 1 and its check; the second check would pass 0.015
    assert report.takes[1].check is None
    assert "stopped before the check of take 2" in report.stopped


def test_shot_check_on_the_command_line_prints_every_take_and_exits_1_when_none_passes(
    isolated_home: Path, scorer: type[TakeScorer]
) -> None:
    assert run_cli(isolated_home, "character", "new", "Mia", "--prompt", PROMPT).code == 0
    assert run_cli(isolated_home, "session", "new", "mia").code == 0
    scorer.scores = [30, 85]
    passed = run_cli(isolated_home, "shot", "crying", "--check", "takes", "--takes", "3")
    assert passed.code == 0, passed.stderr
    assert "drifted 30: hair colour" in passed.stdout and "on model 85" in passed.stdout
    assert "picked #" in passed.stdout

    scorer.made, scorer.scores = 0, [20, 30]
    failed = run_cli(
        isolated_home, "shot", "laughing", "--check", "takes", "--takes", "2", "--json"
    )
    assert failed.code == 1
    data = json.loads(failed.stdout)
    assert [t["check"]["score"] for t in data["takes"]] == [20, 30]
    assert data["pick"] == data["takes"][1]["id"] and data["passed"] is False


def test_nonsense_retake_options_are_refused_in_one_line_before_anything_is_made(
    isolated_home: Path, scorer: type[TakeScorer]
) -> None:
    assert run_cli(isolated_home, "character", "new", "Mia", "--prompt", PROMPT).code == 0
    assert run_cli(isolated_home, "session", "new", "mia").code == 0
    for args, message in (
        (("--takes", "0"), "--takes must be 1 to 10, not 0"),
        (("--min-score", "120"), "--min-score must be 0 to 100, not 120"),
        (("--check", "nope"), "unknown checker 'nope'"),
    ):
        outcome = run_cli(isolated_home, "shot", "crying", *args)
        assert outcome.code != 0 and message in outcome.stderr
    with Studio.open(isolated_home) as opened:
        assert opened.status_counts() == {}  # no shot was recorded, let alone paid for


def test_a_dry_run_of_retakes_says_how_many_takes_and_checks_it_could_make(
    isolated_home: Path, scorer: type[TakeScorer]
) -> None:
    assert run_cli(isolated_home, "character", "new", "Mia", "--prompt", PROMPT).code == 0
    assert run_cli(isolated_home, "session", "new", "mia").code == 0
    planned = run_cli(
        isolated_home, "shot", "crying", "--check", "paid", "--takes", "3", "--dry-run"
    )
    assert planned.code == 0
    assert "each take checked with paid (pass mark 80), up to 3 takes" in planned.stdout
    assert "plus up to 3 paid checks" in planned.stdout
    assert scorer.made == 0


def test_tree_all_continues_the_main_column_with_the_pick_not_a_newer_take(
    isolated_home: Path, scorer: type[TakeScorer]
) -> None:
    assert run_cli(isolated_home, "character", "new", "Mia", "--prompt", PROMPT).code == 0
    assert run_cli(isolated_home, "session", "new", "mia").code == 0
    scorer.scores = [75, 40, 30]  # none passes: take 1, the oldest, is the pick and the head
    assert run_cli(isolated_home, "shot", "waving", "--check", "takes", "--takes", "3").code == 1
    for args in ((), ("--all",)):
        lines = run_cli(isolated_home, "tree", *args).stdout.splitlines()
        pick = next(line for line in lines if "· pick" in line)
        assert "take 1/3" in pick and "← head" in pick
        assert pick.startswith("#"), lines  # in the main column, the other takes branch off
