"""One batch made by several workers through one PostgreSQL database (issue 17).

Workers are separate ``onmodel batch run`` processes here, stand-ins for machines, or runners
on threads of this process where the test needs to see inside them (the request schedule,
the money). Every test runs on the throwaway PostgreSQL server of ``tests/pgserver.py``: a
shared batch exists only there (SQLite keeps its single-machine lock, ``test_batch_run.py``).
"""

from __future__ import annotations

import json
import re
import signal
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import text

from limiter_starts import record_limiter_starts
from onmodel.batch import BatchBusyError, BatchReport, run_batch
from onmodel.providers import FACTORIES
from onmodel.store.database import create_database_engine
from onmodel.studio import Studio
from test_batch_support import FakeImages, cli, make_session, rows, start_cli, wait_until

N = 18
LEASE = {"ONMODEL_BATCH_LEASE": "2"}  # a killed worker is dead two seconds after its last beat


def grid(n_poses: int, n_outfits: int) -> str:
    poses = ", ".join(f"pose {i}" for i in range(n_poses))
    outfits = ", ".join(f"outfit {i}" for i in range(n_outfits))
    return f"session: week\nmatrices:\n  - axes: {{pose: [{poses}], outfit: [{outfits}]}}\n"


@pytest.fixture
def shared_db(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ONMODEL_DATABASE_URL", postgres_url)
    return postgres_url


@pytest.fixture
def studio(shared_db: str, isolated_home: Path) -> Iterator[Studio]:
    with Studio.open(isolated_home) as opened:  # on the PostgreSQL database (shared_db)
        make_session(opened)
        yield opened


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeImages:
    provider = FakeImages()
    monkeypatch.setitem(FACTORIES, "openai-images", lambda context: provider)
    return provider


def shot_list(tmp_path: Path, n_poses: int = 6, n_outfits: int = 3) -> Path:
    path = tmp_path / "week.yaml"
    path.write_text(grid(n_poses, n_outfits), encoding="utf-8")
    return path


def check_each_shot_made_once(home: Path, total: int) -> list[str]:
    """Exactly ``total`` succeeded rows, one a key, none left pending; their owners."""
    found = rows(home)
    made = [r for r in found if r.status == "succeeded"]
    assert len(made) == total
    assert max(Counter(r.shot_key for r in made).values()) == 1
    assert not [r for r in found if r.status == "pending"]
    for row in found:
        if row.status == "interrupted":
            assert any(r.retry_of_id == row.id for r in found), f"#{row.id} was not made again"
    return [r.owner or "" for r in made]


def workers_joined(url: str) -> int:
    engine = create_database_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM batch_worker")).scalar_one())
    finally:
        engine.dispose()


def batch_status(home: Path, path: Path) -> str:
    status = cli(home, "batch", "status", str(path), "--json", **LEASE)
    found = re.search(r'"status": "(\w+)"', status.stdout)
    return found[1] if found else status.stderr


@pytest.mark.slow
def test_three_workers_make_each_shot_once_and_one_completes_the_batch(
    studio: Studio, isolated_home: Path, tmp_path: Path
) -> None:
    path = shot_list(tmp_path)
    studio.close()
    workers = [
        start_cli(isolated_home, "batch", "run", str(path), "-c", "2", latency=0.2, **LEASE)
        for _ in range(3)
    ]
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    owners = check_each_shot_made_once(isolated_home, N)
    assert len(set(owners)) >= 2  # the shots were shared out, not made by one worker
    finished = [out for out, _err in outputs if "this worker completed the batch" in out]
    assert len(finished) == 1  # exactly one worker marked the batch completed
    status = cli(isolated_home, "batch", "status", str(path), "--json", **LEASE)
    summary = json.loads(status.stdout)
    assert summary["status"] == "completed"
    run = summary["last_run"]  # recorded by the last worker out, for all three
    assert len(run["workers"]) == 3 and run["succeeded"] == N
    assert Decimal(run["spent_usd"]) == sum(Decimal(w["spent_usd"]) for w in run["workers"])


@pytest.mark.slow
def test_a_killed_workers_shots_are_taken_over_by_the_others(
    studio: Studio, isolated_home: Path, tmp_path: Path, shared_db: str
) -> None:
    path = shot_list(tmp_path)
    studio.close()
    victim = start_cli(isolated_home, "batch", "run", str(path), "-c", "3", latency=1.0, **LEASE)
    mine = f":{victim.pid}:"

    def victim_is_making_shots() -> bool:
        return any(r.status == "pending" and mine in (r.owner or "") for r in rows(isolated_home))

    try:
        assert wait_until(victim_is_making_shots, timeout=60)
        others = [
            start_cli(isolated_home, "batch", "run", str(path), "-c", "2", latency=0.2, **LEASE)
            for _ in range(2)
        ]
        assert wait_until(lambda: workers_joined(shared_db) == 3, timeout=60)
        victim.send_signal(signal.SIGKILL)  # mid-batch, with the others in its run
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
    outputs = [worker.communicate(timeout=120) for worker in others]
    for worker, (_out, err) in zip(others, outputs, strict=True):
        assert worker.returncode == 0, err
    check_each_shot_made_once(isolated_home, N)
    abandoned = [
        r for r in rows(isolated_home) if r.status == "interrupted" and mine in (r.owner or "")
    ]
    assert abandoned  # the victim's requests in flight, made again by the others
    assert any("taking over" in err for _out, err in outputs)
    assert batch_status(isolated_home, path) == "completed"


def run_in_threads(studio_home: Path, path: Path, count: int, **options: object) -> list[object]:
    """Run ``count`` workers of the batch on threads, each with a studio of its own; their
    reports, or the error each raised."""
    results: list[object] = [None] * count

    def work(number: int) -> None:
        with Studio.open(studio_home) as own:
            try:
                results[number] = run_batch(own, path, handle_signals=False, **options)  # type: ignore[arg-type]
            except Exception as exc:
                results[number] = exc

    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_the_request_rate_holds_across_workers(
    studio: Studio,
    fake: FakeImages,
    isolated_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts = record_limiter_starts(monkeypatch)
    path = shot_list(tmp_path, 3, 3)
    reports = run_in_threads(isolated_home, path, 3, concurrency=3, rpm=300)
    assert all(isinstance(report, BatchReport) for report in reports), reports
    assert sum(report.succeeded for report in reports) == 9  # type: ignore[union-attr]
    # 300 a minute for the batch, not for each worker: the starts all three took, on the
    # database's clock, are 0.2 s apart
    scheduled = sorted(starts.scheduled)
    assert len(scheduled) == 9
    assert min(b - a for a, b in pairwise(scheduled)) >= 0.2 - 1e-6
    check_each_shot_made_once(isolated_home, 9)


def test_the_budget_holds_across_workers(
    studio: Studio, fake: FakeImages, isolated_home: Path, tmp_path: Path
) -> None:
    fake.latency = 0.05
    path = shot_list(tmp_path)
    budget = Decimal("0.05")  # room for a handful of the list's shots, not for all of them
    reports = run_in_threads(isolated_home, path, 3, concurrency=2, budget=budget)
    assert all(isinstance(report, BatchReport) for report in reports), reports
    made = [r for r in rows(isolated_home) if r.status == "succeeded"]
    assert 0 < len(made) < N
    spent = sum(Decimal(r.cost_usd or "0") for r in made)
    assert spent <= budget  # what the workers spent together, not each
    assert {report.stop_reason for report in reports} == {"budget"}  # type: ignore[union-attr]


def test_another_batch_on_the_session_is_refused_while_workers_run(
    studio: Studio, fake: FakeImages, isolated_home: Path, tmp_path: Path
) -> None:
    fake.latency = 0.3
    path = shot_list(tmp_path, 3, 2)
    running = threading.Thread(target=run_in_threads, args=(isolated_home, path, 1))
    running.start()
    try:
        assert wait_until(lambda: bool(fake.prompts), timeout=30)
        other = tmp_path / "other.yaml"
        other.write_text("session: week\nshots: [{pose: a}]\n", encoding="utf-8")
        with pytest.raises(BatchBusyError, match="another batch \\('week'\\) is running"):
            run_batch(studio, other, handle_signals=False)
        changed = tmp_path / "week.yaml"
        changed.write_text(textwrap.dedent(grid(3, 3)), encoding="utf-8")
        with pytest.raises(BatchBusyError, match="another version of batch 'week'"):
            run_batch(studio, changed, handle_signals=False)
    finally:
        running.join(60)


def test_a_new_run_after_all_workers_left_starts_afresh(
    studio: Studio, fake: FakeImages, isolated_home: Path, tmp_path: Path
) -> None:
    path = shot_list(tmp_path, 2, 2)
    first = run_batch(studio, path, handle_signals=False)
    assert first.succeeded == 4 and first.completed_here is True
    again = run_batch(studio, path, handle_signals=False)
    assert again.succeeded == 0 and again.already_done == 4 and again.complete
    with studio.engine.connect() as conn:
        epoch = conn.execute(text("SELECT epoch FROM batch_share")).scalar_one()
        workers = conn.execute(
            text("SELECT count(*) FROM batch_worker WHERE epoch = 2 AND stopped_at IS NULL")
        ).scalar_one()
        claims = conn.execute(text("SELECT count(*) FROM batch_claim")).scalar_one()
    assert epoch == 2 and workers == 0  # the second run's worker has left
    assert claims == 0  # the second run offered nothing: every shot was made by the first


def test_only_postgresql_shares_batches(tmp_path: Path) -> None:
    from onmodel.batch.shared import shares_batches
    from onmodel.store.database import create_database_engine

    engine = create_database_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert not shares_batches(engine)


def test_a_bad_lease_setting_is_one_line(
    studio: Studio, isolated_home: Path, tmp_path: Path
) -> None:
    studio.close()
    path = shot_list(tmp_path, 1, 1)
    result = cli(isolated_home, "batch", "run", str(path), latency=0.0, ONMODEL_BATCH_LEASE="soon")
    assert result.returncode != 0
    assert "ONMODEL_BATCH_LEASE='soon' is not a number of seconds" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_sees_a_run_on_another_machine(
    studio: Studio, fake: FakeImages, isolated_home: Path, tmp_path: Path
) -> None:
    """A worker elsewhere is live through its heartbeat, not a lock file here."""
    fake.latency = 1.0
    path = shot_list(tmp_path, 3, 2)
    running = threading.Thread(
        target=run_in_threads, args=(isolated_home, path, 1), kwargs={"concurrency": 1}
    )
    running.start()
    try:
        assert wait_until(lambda: bool(fake.prompts), timeout=30)
        other_machine = tmp_path / "elsewhere"  # another home: no lock file of the run there
        assert batch_status(other_machine, path) == "running"
    finally:
        running.join(60)


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    # nothing listens on port 1; libpq also takes a password in the query
    url = "postgresql://onmodel:sup3rsecret@127.0.0.1:1/studio?password=querysecret"
    result = cli(tmp_path / "home", "session", "list", ONMODEL_DATABASE_URL=url)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot open the database postgresql")
    assert "onmodel:***@127.0.0.1:1/studio" in result.stderr
    assert "sup3rsecret" not in result.stderr + result.stdout
    assert "querysecret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_two_workers_make_each_take_once_and_ask_each_check_once(
    shared_db: str, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onmodel import checkers
    from test_batch_retakes import RETAKES, PoseScorer, new_session

    monkeypatch.setitem(checkers.FACTORIES, "stub", lambda context: PoseScorer(context))
    new_session(isolated_home)
    PoseScorer.scores, PoseScorer.asked = {"waving": [90], "jumping": [40, 85]}, []
    path = tmp_path / "week.yaml"
    path.write_text(RETAKES, encoding="utf-8")
    reports = run_in_threads(isolated_home, path, 2, concurrency=1)
    assert all(isinstance(report, BatchReport) for report in reports), reports
    # take 2 of jumping only after take 1 drifted, each take checked once, by one worker
    assert sorted(PoseScorer.asked) == ["jumping", "jumping", "waving"]
    made = [r for r in rows(isolated_home) if r.status == "succeeded"]
    assert len(made) == 3 and max(Counter(r.shot_key for r in made).values()) == 1
    assert sum(report.checks_made for report in reports) == 3  # type: ignore[union-attr]
    assert any(report.complete for report in reports)  # type: ignore[union-attr]


def test_a_dead_workers_reservation_is_spent_not_waited_for(studio: Studio, shared_db: str) -> None:
    """Refused by the budget, a worker must not wait forever for a dead worker's money."""
    from onmodel.store import claims
    from onmodel.store.batches import save_batch

    session = studio.session("week")
    batch = save_batch(studio.engine, None, name="b", session_id=session.id, spec_hash="x")
    assert batch.id is not None
    claims.start_run(studio.engine, batch.id, budget_nusd=10, rate_interval=None)
    ids = [
        claims.register_worker(
            studio.engine, batch.id, 1, owner=f"h:{n}:0", host="h", pid=n, concurrency=1, lease=1
        )
        for n in (1, 2)
    ]
    claims.offer(studio.engine, batch.id, [("a", 0), ("b", 1)])
    assert [c.key for c in claims.claim_next(studio.engine, batch.id, ids[0], 1).claims] == ["a"]
    assert claims.reserve(studio.engine, batch.id, "a", ids[0], 8).granted
    with studio.engine.begin() as conn:  # worker 1 dies: its last beat is a minute old
        conn.execute(
            text("UPDATE batch_worker SET seen_at = seen_at - 60 WHERE id = :id"), {"id": ids[0]}
        )
    assert [c.key for c in claims.claim_next(studio.engine, batch.id, ids[1], 1).claims] == ["b"]
    refused = claims.reserve(studio.engine, batch.id, "b", ids[1], 8)
    assert not refused.granted
    assert (refused.reserved_nusd, refused.spent_nusd) == (0, 8)  # nothing left to wait for
