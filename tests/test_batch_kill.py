"""Killing ``onmodel batch run`` at any moment, then running it again.

Each test runs the real CLI in a subprocess (with the in-process ``FakeImages`` provider and a
fixed latency, so there are always requests in flight), signals it mid-way, and checks what the
next run finds: exactly one succeeded image per shot, every file present and verified, and
every abandoned row linked to the row that replaced it.
"""

from __future__ import annotations

import signal
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from onmodel.studio import Studio
from test_batch_support import cli, make_session, rows, start_cli, wait_until

N = 16


@pytest.fixture
def shot_list(studio: Studio, tmp_path: Path) -> Path:
    make_session(studio)
    studio.close()
    path = tmp_path / "week.yaml"
    path.write_text(
        textwrap.dedent(
            """
            session: week
            matrices:
              - axes:
                  pose: [standing, sitting, running, jumping]
                  outfit: [hoodie, uniform, sportswear, raincoat]
            """
        )
    )
    return path


def check_complete(home: Path) -> None:
    """Exactly N succeeded images, one per key, files verified, retries linked."""
    found = rows(home)
    succeeded = [r for r in found if r.status == "succeeded"]
    assert len(succeeded) == N
    assert Counter(r.shot_key for r in succeeded).most_common(1)[0][1] == 1
    assert not [r for r in found if r.status == "pending"]
    with Studio.open(home) as studio:
        for row in succeeded:
            assert row.sha256 and row.format
            assert studio.blobs.verify(row.sha256, row.format)
    for row in found:
        if row.status == "interrupted":
            assert any(r.retry_of_id == row.id for r in found), f"row {row.id} was not re-made"


def count(home: Path, status: str) -> int:
    return sum(1 for r in rows(home) if r.status == status)


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_completes_exactly_once(
    isolated_home: Path, shot_list: Path
) -> None:
    # on PostgreSQL a killed worker is known dead once its lease runs out (batch/shared.py)
    lease = {"ONMODEL_BATCH_LEASE": "2"}
    process = start_cli(
        isolated_home, "batch", "run", str(shot_list), "-c", "4", "--progress", "plain",
        latency=0.3, **lease,
    )  # fmt: skip
    try:
        assert wait_until(lambda: count(isolated_home, "succeeded") >= 4, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    made_before = count(isolated_home, "succeeded")
    assert 4 <= made_before < N

    def interrupted() -> bool:  # running, but nobody holds the lock (or the lease)
        status = cli(isolated_home, "batch", "status", str(shot_list), "--json", **lease)
        return '"status": "interrupted"' in status.stdout

    assert wait_until(interrupted, timeout=30, interval=0.5)
    again = cli(isolated_home, "batch", "run", str(shot_list), "-c", "4", latency=0.0, **lease)
    assert again.returncode == 0, again.stderr
    assert f"{N - made_before} made" in again.stdout
    check_complete(isolated_home)


@pytest.mark.slow
def test_sigterm_marks_in_flight_shots_interrupted_and_exits_non_zero(
    isolated_home: Path, shot_list: Path
) -> None:
    process = start_cli(
        isolated_home, "batch", "run", str(shot_list), "-c", "3", "--progress", "plain",
        latency=2.0,
    )  # fmt: skip
    try:
        assert wait_until(lambda: count(isolated_home, "pending") == 3, timeout=30)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)  # prompt: nobody waits for the 2 s calls
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr
    assert count(isolated_home, "pending") == 0
    assert count(isolated_home, "interrupted") == 3

    again = cli(isolated_home, "batch", "run", str(shot_list), "-c", "8", latency=0.0)
    assert again.returncode == 0, again.stderr
    check_complete(isolated_home)


@pytest.mark.slow
def test_first_ctrl_c_lets_shots_in_flight_finish(isolated_home: Path, shot_list: Path) -> None:
    process = start_cli(
        isolated_home, "batch", "run", str(shot_list), "-c", "2", "--progress", "plain",
        latency=1.0,
    )  # fmt: skip
    try:
        assert wait_until(lambda: count(isolated_home, "pending") == 2, timeout=30)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "waiting for 2 shot(s) in flight" in stderr
    assert count(isolated_home, "pending") == 0
    assert count(isolated_home, "interrupted") == 0  # the paid-for shots were kept
    assert count(isolated_home, "succeeded") == 2

    again = cli(isolated_home, "batch", "run", str(shot_list), latency=0.0)
    assert again.returncode == 0, again.stderr
    check_complete(isolated_home)


def test_cli_exit_codes_and_plain_progress(isolated_home: Path, shot_list: Path) -> None:
    bad = shot_list.with_name("bad.yaml")
    bad.write_text("shots:\n  - pose: a\n  - posee: b\n")
    result = cli(isolated_home, "batch", "run", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {bad}:3: shots[1].posee: unknown field 'posee' (did you mean 'pose'?)"
    )

    refused = shot_list.with_name("refused.yaml")
    refused.write_text("session: week\nshots:\n  - pose: a\n  - text: FORBIDDEN\n")
    result = cli(isolated_home, "batch", "run", str(refused), latency=0.0)
    assert result.returncode == 1
    assert "[2/2]" in result.stderr and "✗" in result.stderr
    assert "batch incomplete: 1 failed" in result.stderr
    assert "1 made, 1 failed" in result.stdout

    before = len(rows(isolated_home))
    dry = cli(isolated_home, "batch", "run", str(shot_list), "--dry-run", "--json", latency=0.0)
    assert dry.returncode == 0, dry.stderr
    assert '"to_run": 16' in dry.stdout and len(rows(isolated_home)) == before  # wrote nothing

    listed = cli(isolated_home, "batch", "list")
    assert "refused" in listed.stdout and "1/2" in listed.stdout
