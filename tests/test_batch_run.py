"""Running shot lists in-process: idempotence, limits, budget, failures, status.

The provider is ``FakeImages`` registered as ``openai-images`` (see test_batch_support), so
these run without a network; the same behaviours against a real HTTP server are in
test_batch_server.py and the kill-and-resume ones in test_batch_kill.py.
"""

from __future__ import annotations

import io
import textwrap
import threading
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from sqlmodel import col, select

from limiter_starts import record_limiter_starts
from onmodel.batch import (
    BatchBusyError,
    BatchRunner,
    PlainProgress,
    RateLimiter,
    ShotListError,
    batch_status,
    list_batches,
    make_progress,
    preview_batch,
    run_batch,
)
from onmodel.batch.lock import is_locked, session_lock
from onmodel.errors import BudgetError
from onmodel.providers import FACTORIES
from onmodel.sheet import ShotRequest
from onmodel.store.database import transaction
from onmodel.store.models import ImageRow
from onmodel.studio import Studio
from test_batch_support import REFUSE_WORD, FakeImages, make_session, wait_until


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeImages:
    images = FakeImages()
    monkeypatch.setitem(FACTORIES, "openai-images", lambda context: images)
    return images


def write(tmp_path: Path, text: str, name: str = "week.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def batch_rows(studio: Studio) -> list[ImageRow]:
    with transaction(studio.engine) as db:
        return list(
            db.exec(
                select(ImageRow)
                .where(col(ImageRow.shot_key).is_not(None))
                .order_by(col(ImageRow.id))
            ).all()
        )


def grid(n_poses: int, n_outfits: int, extra: str = "") -> str:
    poses = ", ".join(f"pose {i}" for i in range(n_poses))
    outfits = ", ".join(f"outfit {i}" for i in range(n_outfits))
    return f"session: week\n{extra}matrices:\n  - axes: {{pose: [{poses}], outfit: [{outfits}]}}\n"


# ---------------------------------------------------------------------------------- basics


def test_run_makes_every_shot_once_and_a_rerun_makes_nothing(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    session = make_session(studio)
    head_before = session.row.head_image_id
    path = write(tmp_path, grid(3, 2))
    report = run_batch(studio, path, concurrency=3)
    assert (report.succeeded, report.failed, report.total, report.complete) == (6, 0, 6, True)
    assert report.problem() is None
    made = batch_rows(studio)
    assert [r.status for r in made] == ["succeeded"] * 6
    assert len({r.shot_key for r in made}) == 6
    assert {r.batch_id for r in made} == {report.batch_id}
    assert {r.parent_id for r in made} == {head_before}  # siblings of the head at the start
    assert studio.session(session.id).row.head_image_id == head_before  # head did not move
    assert all(studio.blobs.verify(r.sha256 or "", r.format or "") for r in made)
    assert report.spent > 0 and report.spent_unknown == 0
    assert report.spent == sum(Decimal(r.cost_usd or "0") for r in made)

    again = run_batch(studio, path, concurrency=3)
    assert (again.succeeded, again.already_done, again.to_run) == (0, 6, 0)
    assert again.batch_id == report.batch_id
    assert len(fake.prompts) == 6 and len(batch_rows(studio)) == 6


def test_editing_the_list_makes_only_the_new_shots(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, grid(2, 2))
    run_batch(studio, path)
    path.write_text(grid(3, 2) + "    repeat: 2\n", encoding="utf-8")  # reorder-proof keys
    report = run_batch(studio, path)
    # 3x2 combinations x 2 variations = 12; variation 1 of the old 4 exists already
    assert (report.total, report.already_done, report.succeeded) == (12, 4, 8)
    assert len(batch_rows(studio)) == 12


def test_a_shot_lists_name_is_its_batch(studio: Studio, fake: FakeImages, tmp_path: Path) -> None:
    """Same name, same batch: its made shots are skipped. Another name is another batch, whose
    shots are made even when they ask for the same thing (issue 13)."""
    make_session(studio)
    shots = "session: week\nshots:\n  - pose: a\n  - pose: b\n"
    first = run_batch(studio, write(tmp_path, "name: monday\n" + shots, "one.yaml"))
    again = run_batch(studio, write(tmp_path, "name: monday\n" + shots, "two.yaml"))
    assert (first.succeeded, again.already_done, again.succeeded) == (2, 2, 0)
    assert again.batch_id == first.batch_id
    other = run_batch(studio, write(tmp_path, "name: tuesday\n" + shots, "three.yaml"))
    assert (other.already_done, other.succeeded) == (0, 2)
    assert other.batch_id != first.batch_id
    unnamed = write(tmp_path, shots, "wednesday.yaml")  # no name: the file's name
    assert run_batch(studio, unnamed).succeeded == 2
    assert batch_status(studio, unnamed).summary.counts["done"] == 2
    assert [s.state for s in batch_status(studio, "monday").shots] == ["done", "done"]
    assert len(batch_rows(studio)) == 6 and len(fake.prompts) == 6


def test_a_renamed_sessions_batch_still_finds_its_shots(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, grid(2, 1))
    assert run_batch(studio, path).succeeded == 2
    studio.rename_session("week", slug="days")
    again = run_batch(studio, path, session="days")
    assert (again.already_done, again.succeeded) == (2, 0)
    assert [s.state for s in batch_status(studio, path, session="days").shots] == ["done"] * 2


def test_from_overrides_the_parent_and_the_parent_is_fixed_per_batch(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    session = make_session(studio)
    base = studio.shot(session, ShotRequest(pose="base"))
    assert studio.session(session.id).row.head_image_id == base.id
    path = write(tmp_path, f"shots:\n  - pose: a\n  - pose: b\n    from: {base.row.parent_id}\n")
    run_batch(studio, path, session="week")
    first = {r.request["pose"]: r.parent_id for r in batch_rows(studio)}
    assert first == {"a": base.id, "b": base.row.parent_id}
    later = studio.shot(session, ShotRequest(pose="later"))  # the head moves on
    path.write_text(path.read_text() + "  - pose: c\n")
    run_batch(studio, path, session="week")
    third = next(r for r in batch_rows(studio) if r.request["pose"] == "c")
    assert third.parent_id == base.id != later.id  # the batch's parent, not the new head


# ---------------------------------------------------------------------------------- limits


def test_concurrency_is_bounded_and_used(studio: Studio, fake: FakeImages, tmp_path: Path) -> None:
    make_session(studio)
    fake.latency = 0.15
    report = run_batch(studio, write(tmp_path, grid(4, 3)), concurrency=3)
    assert report.succeeded == 12
    assert fake.max_in_flight == 3  # how near the ideal it comes: benchmarks/batch_throughput.py


def test_rate_limit_spaces_request_starts(
    studio: Studio, fake: FakeImages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_session(studio)
    starts = record_limiter_starts(monkeypatch)  # when the run's limiter let each one start
    report = run_batch(studio, write(tmp_path, grid(3, 2)), concurrency=4, rpm=600)
    assert report.succeeded == 6
    # 600 per minute: one start every 0.1 s, no bursts, on the limiter's schedule (measured
    # gaps between provider calls would carry the machine's load)
    assert len(starts.scheduled) == 6
    assert min(b - a for a, b in pairwise(starts.scheduled)) >= 0.1 - 1e-6  # µs clocks
    # and no call reached the provider ahead of its turn
    sent = sorted(fake.starts)
    assert len(sent) == 6 and all(s >= a for s, a in zip(sent, starts.local, strict=True))


def test_rate_limiter_spaces_starts_evenly() -> None:
    now = [100.0]
    limiter = RateLimiter(120, clock=lambda: now[0])  # one start every 0.5 s
    assert limiter.delay() == 0
    limiter.take()
    assert limiter.delay() == pytest.approx(0.5)
    now[0] += 0.2
    assert limiter.delay() == pytest.approx(0.3)
    now[0] += 5  # idle time does not build up a burst allowance
    limiter.take()
    assert limiter.delay() == pytest.approx(0.5)
    assert RateLimiter(None).delay() == 0


def test_eight_concurrent_writers_never_lock_the_database(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    fake.latency = 0.25
    report = run_batch(studio, write(tmp_path, grid(8, 4)), concurrency=8)
    assert (report.succeeded, report.failed) == (32, 0), report.failures[:1]
    assert fake.max_in_flight == 8


def test_concurrent_execute_calls_share_sqlite_without_locking_errors(
    studio: Studio, fake: FakeImages
) -> None:
    """The worst case for SQLite: 8 threads writing pending rows, files and results at once."""
    session = make_session(studio)
    plans = [studio.plan_shot(session, ShotRequest(pose=f"pose {i}")) for i in range(48)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(mine: list[object]) -> None:
        barrier.wait()
        for plan in mine:
            try:
                studio.execute(plan)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(plans[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with transaction(studio.engine) as db:
        statuses = db.exec(select(ImageRow.status).where(ImageRow.kind == "shot")).all()
    assert list(statuses) == ["succeeded"] * 48


# ---------------------------------------------------------------------------------- failures


def test_a_moderation_refusal_does_not_stop_the_rest(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(
        tmp_path,
        f"""
        shots:
          - pose: one
          - pose: two
          - pose: three
          - text: {REFUSE_WORD}
          - pose: four
          - pose: five
        """,
    )
    report = run_batch(studio, path, concurrency=2)
    assert (report.succeeded, report.failed, report.not_run) == (5, 1, 0)
    failure = report.failures[0]
    assert failure.line == 6 and "safety system" in failure.error
    assert "onmodel retry" not in failure.error  # batch advice is --retry-failed
    failed_row = next(r for r in batch_rows(studio) if r.status == "failed")
    assert failed_row.error_type == "moderation" and failed_row.error_categories == ["violence"]
    assert report.problem() is not None and "--retry-failed" in (report.problem() or "")

    calls = len(fake.prompts)
    skipped = run_batch(studio, path)
    assert (skipped.to_run, skipped.skipped_failed, len(fake.prompts)) == (0, 1, calls)

    fake.refuse = None
    retried = run_batch(studio, path, retry_failed=True)
    assert (retried.succeeded, retried.complete) == (1, True)
    newest = batch_rows(studio)[-1]
    assert newest.status == "succeeded" and newest.retry_of_id == failed_row.id
    assert newest.shot_key == failed_row.shot_key


def test_auth_failure_stops_scheduling(
    studio: Studio, fake: FakeImages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onmodel.providers.base import ProviderError

    make_session(studio)

    def no_key(request: object) -> None:
        raise ProviderError("no OpenAI API key", kind="auth")

    monkeypatch.setattr(fake, "generate", no_key)
    report = run_batch(studio, write(tmp_path, grid(4, 4)), concurrency=2)
    assert report.stop_reason == "fatal" and report.failed <= 2 and report.not_run >= 14
    assert "every other shot would hit" in report.message


def test_invalid_request_fails_before_anything_runs(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, "shots:\n  - pose: a\n  - pose: b\n    size: 1000x1000\n")
    with pytest.raises(ShotListError, match=r"week.yaml:3: shots\[1\]: .*1000x1000"):
        run_batch(studio, path)
    assert fake.prompts == [] and batch_rows(studio) == []


# ---------------------------------------------------------------------------------- budget


def test_budget_stops_before_a_shot_could_exceed_it(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, grid(5, 2))
    preview = preview_batch(studio, path)
    estimate = preview.shots[0].estimate
    assert estimate is not None and estimate > 0
    budget = estimate * 3 + estimate / 2
    report = run_batch(studio, path, concurrency=3, budget=budget)
    assert report.stop_reason == "budget" and report.not_run > 0
    assert report.spent <= budget
    # It stopped only because one more shot could have gone over.
    assert report.spent + estimate > budget
    made = [r for r in batch_rows(studio) if r.status == "succeeded"]
    assert len(made) == report.succeeded and sum(Decimal(r.cost_usd or 0) for r in made) <= budget

    rest = run_batch(studio, path)
    assert rest.succeeded == 10 - report.succeeded and rest.complete


def test_a_budget_refuses_models_without_prices_up_front(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, "shots:\n  - pose: a\n  - pose: b\n    model: gpt-image-2.6-sunburst\n")
    with pytest.raises(BudgetError, match=r"week\.yaml:3.*unknown"):
        run_batch(studio, path, budget="10")
    assert fake.prompts == []


def test_budget_must_be_an_amount(studio: Studio, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="--budget must be"):
        BatchRunner(studio, write(tmp_path, "shots: [{pose: a}]\n"), budget="lots")


# ---------------------------------------------------------------------------------- dry run


def test_dry_run_shows_what_would_run_and_records_nothing(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, f"shots:\n  - pose: a\n  - text: {REFUSE_WORD}\n  - pose: c\n")
    preview = preview_batch(studio, path)
    assert [p.runs for p in preview.shots] == [True, True, True]
    assert preview.estimated_total == sum(p.estimate or 0 for p in preview.shots)
    assert batch_rows(studio) == [] and fake.prompts == []

    run_batch(studio, path)
    after = preview_batch(studio, path, budget="0")
    assert [p.status.state for p in after.shots] == ["done", "failed", "done"]
    assert [p.runs for p in after.shots] == [False, False, False]
    assert after.estimated_total == 0
    retry = preview_batch(studio, path, retry_failed=True, budget="0")
    assert [p.runs for p in retry.shots] == [False, True, False]
    assert retry.within_budget == 0
    assert retry.to_dict()["shots"][1]["state"] == "failed"


# ---------------------------------------------------------------------------------- safety


@pytest.mark.sqlite_only(
    "the session's flock; on PostgreSQL workers join one run instead (test_batch_shared.py)"
)
def test_a_second_run_on_the_same_session_is_refused(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    session = make_session(studio)
    with (
        session_lock(studio.paths.home, session.id, session.slug),
        pytest.raises(BatchBusyError, match="another batch is running"),
    ):
        run_batch(studio, write(tmp_path, "shots: [{pose: a}]\n"))


@pytest.mark.sqlite_only(
    "the session's flock; on PostgreSQL workers join one run instead (test_batch_shared.py)"
)
def test_keyboard_interrupt_in_library_use_marks_in_flight_rows_interrupted(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    # the first shot returns at once, the second is still in flight when the run gives up
    fake.latency_for = lambda prompt: 0.05 if "pose 0" in prompt and "outfit 0" in prompt else 1
    runner = BatchRunner(studio, write(tmp_path, grid(3, 2)), concurrency=2)
    real_account = runner._account
    calls = {"n": 0}

    def interrupt_after_first(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real_account(*args)

    runner._account = interrupt_after_first
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    statuses = [r.status for r in batch_rows(studio)]
    assert "pending" not in statuses and "interrupted" in statuses
    # The abandoned requests still finish in this living process; until they have, the
    # session stays locked, so a new run cannot make the same shots a second time.
    with pytest.raises(BatchBusyError):
        run_batch(studio, runner.loaded)
    assert wait_until(lambda: not is_locked(studio.paths.home, runner.session_id), timeout=10)
    fake.latency_for = None
    report = run_batch(studio, runner.loaded)
    assert report.complete
    rows = batch_rows(studio)
    done = [r for r in rows if r.status == "succeeded"]
    assert len(done) == 6 and len({r.shot_key for r in done}) == 6
    for row in rows:
        if row.status == "interrupted":
            assert any(r.retry_of_id == row.id for r in rows)


def test_retry_command_keeps_a_batch_shot_in_its_batch(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, f"shots:\n  - pose: a\n  - text: {REFUSE_WORD}\n")
    report = run_batch(studio, path)
    failed = next(r for r in batch_rows(studio) if r.status == "failed")
    fake.refuse = None
    retried = studio.retry(failed.id or 0)
    assert retried.row.shot_key == failed.shot_key and retried.row.batch_id == report.batch_id
    assert run_batch(studio, path).to_run == 0  # the batch sees the shot as done


# ---------------------------------------------------------------------------------- status


def test_status_by_file_id_and_name_and_list(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, f"shots:\n  - pose: a\n  - text: {REFUSE_WORD}\n  - pose: c\n")
    never = batch_status(studio, path)
    assert never.summary.status == "not run" and never.summary.counts["new"] == 3
    report = run_batch(studio, path)
    by_file = batch_status(studio, path)
    assert [s.state for s in by_file.shots] == ["done", "failed", "done"]
    assert by_file.shots[1].error and by_file.shots[1].line == 3
    assert by_file.summary.status == "incomplete"
    by_id = batch_status(studio, str(report.batch_id))
    by_name = batch_status(studio, "week")
    assert [s.state for s in by_id.shots] == [s.state for s in by_name.shots]
    assert [s.key for s in by_id.shots] == [s.key for s in by_file.shots]
    listed = list_batches(studio)
    assert [(b.name, b.counts["done"], b.counts["failed"]) for b in listed] == [("week", 2, 1)]
    assert listed[0].last_run["stop_reason"] == "completed"
    with pytest.raises(Exception, match="no batch #99"):
        batch_status(studio, "99")


# ---------------------------------------------------------------------------------- progress


def test_plain_progress_prints_one_line_per_shot(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    out = io.StringIO()
    run_batch(studio, write(tmp_path, grid(2, 1)), progress=PlainProgress(out))
    lines = out.getvalue().splitlines()
    assert lines[0] == "batch week: 2 to run"
    assert lines[1].startswith("[1/2] ✓ #")
    assert "remaining 1" in lines[1] and "eta" in lines[1] and "cost $0.0" in lines[1]
    assert "remaining 0" in lines[2]
    assert isinstance(make_progress("auto", io.StringIO()), PlainProgress)


def test_runs_from_a_worker_thread_without_signal_handlers(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    make_session(studio)
    path = write(tmp_path, grid(2, 2))
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(run_batch(studio, path)))
    thread.start()
    thread.join(30)
    assert getattr(results[0], "succeeded", None) == 4


def test_a_run_leaves_a_live_retry_of_its_shot_alone(
    studio: Studio, fake: FakeImages, tmp_path: Path
) -> None:
    """A batch shot being retried by a live process is running, not abandoned: not paid twice."""
    from onmodel.owners import owner_token

    make_session(studio)
    path = write(tmp_path, f"shots:\n  - pose: a\n  - text: {REFUSE_WORD}\n")
    run_batch(studio, path)
    failed = next(r for r in batch_rows(studio) if r.status == "failed")
    with transaction(studio.engine) as db:  # a retry in flight, recorded by this live process
        retrying = ImageRow(
            **failed.model_dump(exclude={"id", "status", "error_type", "error_message", "owner"}),
            status="pending",
            owner=owner_token(studio.paths.home),
        )
        db.add(retrying)
    fake.refuse = None
    calls = len(fake.prompts)
    report = run_batch(studio, path, retry_failed=True)
    assert len(fake.prompts) == calls  # nothing remade while the retry runs
    assert report.complete is False
    assert studio.image(retrying.id or 0).status == "pending"
