"""Retakes in shot lists: ``check``, ``min_score`` and ``takes`` make a shot again until a take
is on model, in rounds inside one batch run (issue 14). A stand-in checker scores each pose as
the test scripts it, so which takes are made is tested apart from how a score is measured."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import ClassVar

import pytest

from cli_inprocess import Outcome, run_cli
from onmodel import checkers
from onmodel.checkers.base import Checker, CheckOutcome, CheckSubject, TraitResult, Verdict
from onmodel.providers.base import GenerationRequest, GenerationResult, ProviderError
from onmodel.providers.preview import PreviewProvider
from onmodel.studio import Studio
from test_retakes import PaidScorer

PROMPT = "a cheerful girl with orange hair and green eyes"


class PoseScorer(Checker):
    """Scores the checks of each pose as scripted, in the order they are made."""

    name = "stub"
    scores: ClassVar[dict[str, list[int]]] = {}
    asked: ClassVar[list[str]] = []

    def check(self, subject: CheckSubject) -> CheckOutcome:
        pose = subject.request.pose
        PoseScorer.asked.append(pose)
        score = PoseScorer.scores[pose].pop(0)
        verdict = Verdict.SAME if score >= 80 else Verdict.DRIFTED
        return CheckOutcome(score=score, traits=[TraitResult("hair_color", verdict)])


class PaidPoseScorer(PaidScorer):
    """test_retakes' paid stand-in (a cent a check, at most a cent), scoring by pose."""

    name = "paidstub"
    check = PoseScorer.check


@pytest.fixture
def scorer(monkeypatch: pytest.MonkeyPatch) -> type[PoseScorer]:
    for cls in (PoseScorer, PaidPoseScorer):
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
    assert (report["succeeded"], report["checked"], report["retaken"]) == (3, 3, 1)
    assert (report["not_needed"], report["on_model"], report["complete"]) == (3, 2, True)
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
    assert (report["succeeded"], report["checked"], report["picked"]) == (0, 0, 0)
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
    assert (report["already_done"], report["succeeded"], report["checked"]) == (2, 1, 3)
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
    assert "2 checked (0 on model, 1 drifted), 1 retaken" in outcome.stdout

    status = run_cli(isolated_home, "batch", "status", str(path))
    assert "drifted 40" in status.stdout and "drifted 72, picked" in status.stdout
    assert "1 drifted, 1 retaken" in status.stdout


def test_batch_status_shows_scores_and_takes_not_needed_by_file_and_by_id(
    isolated_home: Path, tmp_path: Path, scorer: type[PoseScorer]
) -> None:
    new_session(isolated_home)
    scorer.scores = {"waving": [90], "jumping": [40, 85]}
    path = write_list(tmp_path, RETAKES)
    before = run_cli(isolated_home, "batch", "run", str(path), "--dry-run")
    assert "retake → run if drifted" in before.stdout
    assert "6 shots: 6 to run" in before.stdout  # the worst case: every take
    _, report = run_json(isolated_home, path)
    for target in (str(path), str(report["batch_id"])):
        shown = run_cli(isolated_home, "batch", "status", target)
        assert shown.code == 0, shown.stderr
        assert "on model 90, picked" in shown.stdout and "drifted 40" in shown.stdout
        assert "2 done" not in shown.stdout and "3 not needed" in shown.stdout
        assert "3 checked, 2 on model" in shown.stdout
    after = run_cli(isolated_home, "batch", "run", str(path), "--dry-run")
    assert "not needed → skip" in after.stdout and "0 to run" in after.stdout


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "defaults:\n  takes: 3\nshots:\n  - pose: waving\n    repeat: 2\n",
            "week.yaml:2: defaults.takes:",
            "takes: 3 with repeat: 2",
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
    assert (report["checked"], report["spent_usd"], report["stop_reason"]) == (1, "0.01", "budget")
    assert scorer.asked == ["waving"]

    resumed, report = run_json(isolated_home, path, "--budget", "0.015")
    assert resumed.code == 0, resumed.stderr
    assert (report["succeeded"], report["checked"]) == (0, 1)
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
    assert (report["succeeded"], report["checked"]) == (2, 2)
    states = [(s["label"], s["state"], s["score"]) for s in status_shots(isolated_home, path)]
    assert states[:3] == [
        ("waving · take 1/3", "done", 40),
        ("waving · take 2/3", "new", None),
        ("waving · take 3/3", "retake", None),
    ]

    again, report = run_json(isolated_home, path)
    assert again.code == 0, again.stderr
    assert (report["succeeded"], report["checked"], report["picked"]) == (2, 2, 2)
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
    assert (report["succeeded"], report["failed"], report["checked"]) == (1, 1, 1)
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
