"""Retakes in shot lists: ``check``, ``min_score`` and ``takes`` make a shot again until a take
is on model, in rounds inside one batch run (issue 14). A stand-in checker scores each pose as
the test scripts it, so which takes are made is tested apart from how a score is measured."""

from __future__ import annotations

import json
import os
import signal
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest

from cli_inprocess import Outcome, run_cli
from onmodel import checkers
from onmodel.checkers.base import (
    Checker,
    CheckerError,
    CheckOutcome,
    CheckSubject,
    TraitResult,
    Verdict,
)
from onmodel.providers.base import GenerationRequest, GenerationResult, ProviderError
from onmodel.providers.preview import PreviewProvider
from onmodel.studio import Studio
from test_retakes import PaidScorer

PROMPT = "a cheerful girl with orange hair and green eyes"


REFUSED = None
"""A scripted answer: the checker cannot answer (as a judge's refusal), a failed check."""


class PoseScorer(Checker):
    """Answers the checks of each pose as scripted, in the order they are made: a score (a low
    one names the hair as drifted), a score with the hair's verdict, or ``REFUSED``."""

    name = "stub"
    scores: ClassVar[dict[str, list[int | tuple[int, Verdict] | None]]] = {}
    asked: ClassVar[list[str]] = []

    def check(self, subject: CheckSubject) -> CheckOutcome:
        pose = subject.request.pose
        PoseScorer.asked.append(pose)
        answer = PoseScorer.scores[pose].pop(0)
        if answer is REFUSED:
            raise CheckerError("the judge refused to answer", kind="refusal")
        if isinstance(answer, tuple):
            score, verdict = answer
        else:
            score, verdict = answer, Verdict.SAME if answer >= 80 else Verdict.DRIFTED
        return CheckOutcome(score=score, traits=[TraitResult("hair_color", verdict)])


class PaidPoseScorer(PaidScorer):
    """test_retakes' paid stand-in (a cent a check, at most a cent), scoring by pose."""

    name = "paidstub"
    check = PoseScorer.check


class UnpricedPoseScorer(PaidPoseScorer):
    """A paid vision model whose per-image tokens the price table does not give (as the
    judge's default model): no check of it can be priced before it is made."""

    name = "unpriced"

    @property
    def model(self) -> str:
        return "vision-test"

    def estimate_max_cost(self, subject: CheckSubject) -> Decimal | None:
        return None


@pytest.fixture
def scorer(monkeypatch: pytest.MonkeyPatch) -> type[PoseScorer]:
    for cls in (PoseScorer, PaidPoseScorer, UnpricedPoseScorer):
        monkeypatch.setitem(checkers.FACTORIES, cls.name, lambda context, cls=cls: cls(context))
    PoseScorer.scores, PoseScorer.asked = {}, []
    return PoseScorer


def new_session(home: Path) -> None:
    assert run_cli(home, "character", "new", "Mia", "--prompt", PROMPT).code == 0
    assert run_cli(home, "session", "new", "mia").code == 0


def write_list(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "week.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_json(home: Path, path: Path, *args: str) -> tuple[Outcome, dict[str, object]]:
    outcome = run_cli(home, "batch", "run", str(path), "--json", *args)
    return outcome, json.loads(outcome.stdout)


def status_shots(home: Path, path: Path) -> list[dict[str, object]]:
    data = json.loads(run_cli(home, "batch", "status", str(path), "--json").stdout)
    shots: list[dict[str, object]] = data["shots"]
    return shots


RETAKES = """\
defaults:
  check: stub
  takes: 3
shots:
  - pose: waving
  - pose: jumping
"""


def test_only_a_drifted_take_is_made_again_the_best_is_picked_and_no_head_moves(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    new_session(isolated_home)
    scorer.scores = {"waving": [90], "jumping": [40, 85]}
    path = write_list(tmp_path, RETAKES)
    with Studio.open(isolated_home) as studio:
        head = studio.session().head_image_id

    outcome, report = run_json(isolated_home, path)
    assert outcome.code == 0, outcome.stderr
    assert (report["succeeded"], report["checks_made"]) == (3, 3)
    assert report["check_counts"] == {
        "shots_checked": 2,
        "on_model": 2,
        "drifted": 0,
        "check_failed": 0,
        "retaken": 1,
    }
    assert (report["not_needed"], report["complete"]) == (3, True)
    assert [(c["label"], c["score"], c["picked"]) for c in report["checks"]] == [
        ("waving · take 1/3", 90, True),
        ("jumping · take 1/3", 40, False),
        ("jumping · take 2/3", 85, True),
    ]

    shots = status_shots(isolated_home, path)
    states = [(s["label"], s["state"], s["score"], s["picked"]) for s in shots]
    assert states == [
        ("waving · take 1/3", "done", 90, True),
        ("waving · take 2/3", "not needed", None, False),
        ("waving · take 3/3", "not needed", None, False),
        ("jumping · take 1/3", "done", 40, False),
        ("jumping · take 2/3", "done", 85, True),
        ("jumping · take 3/3", "not needed", None, False),
    ]
    with Studio.open(isolated_home) as studio:
        assert studio.session().head_image_id == head  # a batch records its pick, no more
        first, second = (studio.image(int(str(s["image_id"]))) for s in shots[3:5])
        assert first.row.parent_id == second.row.parent_id  # siblings, numbered takes
        assert (first.variation, second.variation, second.row.variations) == (1, 2, 3)
        assert second.row.picked_at is not None and first.row.picked_at is None

    again, report = run_json(isolated_home, path)
    assert again.code == 0, again.stderr
    assert (report["succeeded"], report["checks_made"], report["picked"]) == (0, 0, 0)
    assert scorer.asked == ["waving", "jumping", "jumping"]  # nothing checked twice


def test_takes_added_to_a_made_list_check_what_exists_and_retake_only_what_drifted(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    new_session(isolated_home)
    plain = write_list(tmp_path, "shots:\n  - pose: waving\n  - pose: jumping\n")
    assert run_cli(isolated_home, "batch", "run", str(plain)).code == 0
    made = [s["image_id"] for s in status_shots(isolated_home, plain)]

    scorer.scores = {"waving": [30, 95], "jumping": [88]}
    path = write_list(tmp_path, "defaults:\n  takes: 2\n  check: stub\n" + plain.read_text())
    outcome, report = run_json(isolated_home, path)
    assert outcome.code == 0, outcome.stderr
    assert (report["already_done"], report["succeeded"], report["checks_made"]) == (2, 1, 3)
    shots = status_shots(isolated_home, path)
    assert [s["image_id"] for s in shots if s["label"].endswith("take 1/2")] == made
    assert [s["state"] for s in shots] == ["done", "done", "done", "not needed"]


def test_a_shot_that_never_passes_keeps_its_best_take_and_the_run_says_it_drifted(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    new_session(isolated_home)
    scorer.scores = {"waving": [40, 72]}
    path = write_list(tmp_path, "shots:\n  - pose: waving\n    check: stub\n    takes: 2\n")
    outcome = run_cli(isolated_home, "batch", "run", str(path), "--progress", "none")
    assert outcome.code == 1
    assert "1 shot(s) still drifted" in outcome.stderr
    assert "drifted; best 72, picked" in outcome.stdout
    checked = "1 shot checked (0 on model, 1 drifted), 1 take retaken"
    assert f"2 checks made, {checked}" in outcome.stdout

    status = run_cli(isolated_home, "batch", "status", str(path))
    assert "drifted 40" in status.stdout and "drifted 72, picked" in status.stdout
    assert checked in status.stdout  # the same count in the same words


def test_batch_status_shows_scores_and_takes_not_needed_by_file_and_by_id(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    new_session(isolated_home)
    scorer.scores = {"waving": [90], "jumping": [40, 85]}
    path = write_list(tmp_path, RETAKES)
    before = run_cli(isolated_home, "batch", "run", str(path), "--dry-run")
    assert "retake → run if drifted" in before.stdout
    assert "6 shots: 6 to run" in before.stdout  # the worst case: every take
    rows = [line for line in before.stdout.splitlines() if "waving" in line]
    assert "stub ≥ 80" in rows[0] and "if take" not in rows[0]  # which checker, which mark
    assert "stub ≥ 80 if take 1 drifts" in rows[1]
    assert "stub ≥ 80 if takes 1-2 drift" in rows[2]
    _, report = run_json(isolated_home, path)
    for target in (str(path), str(report["batch_id"])):
        shown = run_cli(isolated_home, "batch", "status", target)
        assert shown.code == 0, shown.stderr
        assert "on model 90, picked" in shown.stdout and "drifted 40" in shown.stdout
        assert "2 done" not in shown.stdout and "3 not needed" in shown.stdout
        assert "2 shots checked (2 on model, 0 drifted), 1 take retaken" in shown.stdout
    after = run_cli(isolated_home, "batch", "run", str(path), "--dry-run")
    assert "not needed → skip" in after.stdout and "0 to run" in after.stdout


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "defaults:\n  takes: 3\nshots:\n  - pose: waving\n    repeat: 2\n",
            "week.yaml:5: shots[0].repeat:",  # the layer that made the clash
            "takes: 3 (defaults.takes, line 2) with repeat: 2 (shots[0].repeat, line 5)",
        ),
        (
            "shots:\n  - pose: waving\n  - pose: jumping\n    check: nope\n",
            "week.yaml:4: shots[1].check:",
            "unknown checker 'nope'",
        ),
        (
            "shots:\n  - pose: waving\n    takes: 11\n",
            "week.yaml:3: shots[0].takes:",
            "less than or equal to 10",
        ),
    ],
)
def test_nonsense_retake_keys_are_refused_with_their_line_before_anything_is_recorded(
    isolated_home: Path,
    tmp_path: Path,
    scorer: type[PoseScorer],
    text: str,
    where: str,
    message: str,
) -> None:
    new_session(isolated_home)
    outcome = run_cli(isolated_home, "batch", "run", str(write_list(tmp_path, text)))
    assert outcome.code != 0
    assert where in outcome.stderr and message in outcome.stderr
    with Studio.open(isolated_home) as studio:
        assert studio.status_counts() == {}
    assert run_cli(isolated_home, "batch", "list").stdout.startswith("no batches yet")


def test_a_paid_checks_cost_counts_against_the_budget(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    new_session(isolated_home)
    scorer.scores = {"waving": [90], "jumping": [90]}
    text = "defaults:\n  check: paidstub\nshots:\n  - pose: waving\n  - pose: jumping\n"
    path = write_list(tmp_path, text)
    dry = run_cli(isolated_home, "batch", "run", str(path), "--dry-run")
    assert "up to 2 paid checks" in dry.stdout

    outcome, report = run_json(isolated_home, path, "--budget", "0.015")
    assert outcome.code == 1
    assert (report["checks_made"], report["spent_usd"], report["stop_reason"]) == (
        1,
        "0.01",
        "budget",
    )
    assert scorer.asked == ["waving"]

    resumed, report = run_json(isolated_home, path, "--budget", "0.015")
    assert resumed.code == 0, resumed.stderr
    assert (report["succeeded"], report["checks_made"]) == (0, 1)
    assert scorer.asked == ["waving", "jumping"]


def test_a_run_killed_while_checking_goes_on_from_its_rows_checking_nothing_twice(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM arrives during the second check: that check is finished and kept, nothing more
    is made; the next run makes take 2 of both shots and checks only those."""
    new_session(isolated_home)
    scorer.scores = {"waving": [40, 90], "jumping": [30, 85]}
    check = PoseScorer.check

    def killed(self: PoseScorer, subject: CheckSubject) -> CheckOutcome:
        if len(PoseScorer.asked) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return check(self, subject)

    monkeypatch.setattr(PoseScorer, "check", killed)
    path = write_list(tmp_path, RETAKES)
    outcome, report = run_json(isolated_home, path)
    assert outcome.code == 128 + signal.SIGTERM
    assert (report["succeeded"], report["checks_made"]) == (2, 2)
    states = [(s["label"], s["state"], s["score"]) for s in status_shots(isolated_home, path)]
    assert states[:3] == [
        ("waving · take 1/3", "done", 40),
        ("waving · take 2/3", "new", None),
        ("waving · take 3/3", "retake", None),
    ]

    again, report = run_json(isolated_home, path)
    assert again.code == 0, again.stderr
    assert (report["succeeded"], report["checks_made"], report["picked"]) == (2, 2, 2)
    assert sorted(scorer.asked) == ["jumping", "jumping", "waving", "waving"]


def test_a_failed_take_is_followed_by_the_next_and_is_not_needed_once_one_passes(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``shot --takes`` does: take 1 fails, take 2 is made and passes, and the failed take
    is no shot left to retry (the batch is complete)."""
    drawn = PreviewProvider.generate

    def generate(self: PreviewProvider, request: GenerationRequest) -> GenerationResult:
        if (request.variation, request.variations) == (1, 3):
            raise ProviderError("the server is down", kind="server")
        return drawn(self, request)

    new_session(isolated_home)
    monkeypatch.setattr(PreviewProvider, "generate", generate)
    scorer.scores = {"waving": [88]}
    path = write_list(tmp_path, "shots:\n  - pose: waving\n    check: stub\n    takes: 3\n")
    outcome, report = run_json(isolated_home, path)
    assert (report["succeeded"], report["failed"], report["checks_made"]) == (1, 1, 1)
    assert outcome.code == 0, outcome.stderr  # the failure is reported; the shot is on model
    assert report["complete"] and report["failures"][0]["label"] == "waving · take 1/3"
    shots = status_shots(isolated_home, path)
    assert [(s["state"], s["score"], s["picked"]) for s in shots] == [
        ("not needed", None, False),
        ("done", 88, True),
        ("not needed", None, False),
    ]
    again, report = run_json(isolated_home, path, "--retry-failed")
    assert again.code == 0, again.stderr
    assert (report["succeeded"], report["complete"]) == (0, True)


def test_a_checker_missing_its_key_is_refused_before_anything_is_made(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PaidPoseScorer, "key_env", "ONMODEL_TEST_JUDGE_KEY")
    monkeypatch.delenv("ONMODEL_TEST_JUDGE_KEY", raising=False)
    new_session(isolated_home)
    path = write_list(tmp_path, "shots:\n  - pose: waving\n    check: paidstub\n    takes: 2\n")
    outcome = run_cli(isolated_home, "batch", "run", str(path))
    assert outcome.code != 0 and "ONMODEL_TEST_JUDGE_KEY is not set" in outcome.stderr
    with Studio.open(isolated_home) as studio:
        assert studio.status_counts() == {}


def test_a_failed_check_is_not_drift_no_take_is_made_for_it_and_a_later_run_asks_again(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    """The checker cannot answer take 1: that is no reason to pay for take 2. The shot is
    left unsettled ("check failed"), nothing is picked, and the check is asked once a run,
    not in a loop; the next run asks it again and goes on from the answer."""
    new_session(isolated_home)
    scorer.scores = {"waving": [REFUSED], "jumping": [90]}
    path = write_list(tmp_path, RETAKES)
    outcome, report = run_json(isolated_home, path)
    assert outcome.code == 1
    assert "whose check failed" in outcome.stderr
    assert (report["succeeded"], report["checks_made"], report["complete"]) == (2, 2, False)
    assert report["check_counts"] == {
        "shots_checked": 2,
        "on_model": 1,
        "drifted": 0,
        "check_failed": 1,
        "retaken": 0,
    }
    assert [(f["label"], f["error"].split(";")[0]) for f in report["check_failed"]] == [
        ("waving · take 1/3", "check failed: the judge refused to answer")
    ]
    assert [(c["label"], c["status"], c["passed"]) for c in report["checks"]] == [
        ("waving · take 1/3", "failed", False),
        ("jumping · take 1/3", "succeeded", True),
    ]
    assert scorer.asked == ["waving", "jumping"]  # asked once, not again and again

    shots = status_shots(isolated_home, path)
    assert [(s["state"], s["check_status"], s["picked"]) for s in shots[:3]] == [
        ("done", "failed", False),  # no pick: no take of it has a score
        ("retake", None, False),
        ("retake", None, False),
    ]
    shown = run_cli(isolated_home, "batch", "status", str(path))
    assert "check failed" in shown.stdout and "the judge refused to answer" in shown.stdout
    assert "2 shots checked (1 on model, 0 drifted, 1 check failed)" in shown.stdout
    assert "completed" not in shown.stdout
    dry = run_cli(isolated_home, "batch", "run", str(path), "--dry-run")
    assert "done → check again" in dry.stdout

    scorer.scores = {"waving": [40, 90]}
    again, report = run_json(isolated_home, path)
    assert again.code == 0, again.stderr
    assert (report["succeeded"], report["checks_made"], report["complete"]) == (1, 2, True)
    assert report["check_counts"]["on_model"] == 2 and report["check_failed"] == []
    assert scorer.asked == ["waving", "jumping", "waving", "waving"]
    states = [(s["state"], s["score"], s["picked"]) for s in status_shots(isolated_home, path)]
    assert states[:3] == [("done", 40, False), ("done", 90, True), ("not needed", None, False)]


def test_a_high_score_with_a_drifted_trait_is_not_on_model_and_is_retaken(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    """Passed means the score reached the mark and no trait drifted (``CheckRecord.passed``):
    a judge that scores 95 but says the hair drifted has not put the shot on model, and the
    take on model is picked over it, as ``shot --takes`` picks."""
    new_session(isolated_home)
    scorer.scores = {"waving": [(95, Verdict.DRIFTED), 85]}
    path = write_list(tmp_path, "shots:\n  - pose: waving\n    check: stub\n    takes: 2\n")
    outcome, report = run_json(isolated_home, path)
    assert outcome.code == 0, outcome.stderr
    assert (report["succeeded"], report["complete"]) == (2, True)
    assert [(c["score"], c["passed"]) for c in report["checks"]] == [(95, False), (85, True)]
    assert report["check_counts"]["on_model"] == 1
    shown = run_cli(isolated_home, "batch", "status", str(path))
    assert "drifted 95" in shown.stdout and "on model 85, picked" in shown.stdout


def test_a_budget_with_a_check_whose_cost_cannot_be_estimated_says_how_to_fix_it(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    new_session(isolated_home)
    text = "defaults:\n  check: unpriced\nshots:\n  - pose: waving\n  - pose: jumping\n"
    path = write_list(tmp_path, text)
    why = "the cost of a unpriced check cannot be estimated"
    fix = "input_image_tokens (tokens per input image) for vision-test"

    dry = run_cli(isolated_home, "batch", "run", str(path), "--dry-run", "--budget", "1")
    assert dry.code == 0, dry.stderr
    flat = " ".join(dry.stdout.split())
    assert "for the shots, leaving out up to 2 paid checks" in flat
    assert why in flat and fix in flat and "or run without --budget" in flat
    assert "the run would be refused before anything is made" in flat
    data = json.loads(
        run_cli(isolated_home, "batch", "run", str(path), "--dry-run", "--json").stdout
    )
    assert len(data["unpriced_checks"]) == 1 and why in data["unpriced_checks"][0]

    outcome = run_cli(isolated_home, "batch", "run", str(path), "--budget", "1")
    assert outcome.code != 0
    flat = " ".join(outcome.stderr.split())
    assert why in flat and fix in flat and "prices.yaml" in flat
    with Studio.open(isolated_home) as studio:
        assert studio.status_counts() == {}  # refused before a shot was paid for
    assert scorer.asked == []


def test_a_check_found_unpriced_only_once_its_take_exists_stops_the_run_and_says_why(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent prices a check, the take does not: the take stays unchecked, and the run
    says what keeps it from checking, not that an unknown amount reached the budget."""

    def estimate(self: UnpricedPoseScorer, subject: CheckSubject) -> Decimal | None:
        return None if subject.request.pose else Decimal("0.01")

    monkeypatch.setattr(UnpricedPoseScorer, "estimate_max_cost", estimate)
    new_session(isolated_home)
    path = write_list(tmp_path, "shots:\n  - pose: waving\n    check: unpriced\n")
    outcome, report = run_json(isolated_home, path, "--budget", "1")
    assert outcome.code == 1
    assert (report["succeeded"], report["checks_made"], report["unchecked"]) == (1, 0, 1)
    flat = " ".join(outcome.stderr.split())
    assert "1 made and not checked (the cost of a unpriced check cannot be estimated" in flat
    assert "input_image_tokens (tokens per input image) for vision-test" in flat
    assert scorer.asked == []
