"""Batches through the real ``openai-images`` provider against the local OpenAI-compatible server.

The server counts requests in flight and timestamps each one, so the limits are checked where
they matter — at the API — and a moderation refusal comes back as the real SDK error.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from fakeopenai import FakeOpenAI
from limiter_starts import record_limiter_starts
from onmodel.batch import run_batch
from onmodel.providers import FACTORIES
from onmodel.studio import Studio
from test_batch_support import cli_env, make_session, rows, wait_until

if "openai-images" not in FACTORIES:  # pragma: no cover - only before the provider landed
    pytest.fail("the openai-images provider is missing from onmodel.providers.FACTORIES")


@pytest.fixture
def api(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    return fake_openai


def write(tmp_path: Path, poses: int, outfits: int) -> Path:
    path = tmp_path / "week.yaml"
    pose_list = ", ".join(f"pose {i}" for i in range(poses))
    outfit_list = ", ".join(f"outfit {i}" for i in range(outfits))
    path.write_text(
        f"session: week\nmatrices:\n  - axes: {{pose: [{pose_list}], outfit: [{outfit_list}]}}\n"
    )
    return path


def test_concurrency_limit_is_respected_at_the_server(
    studio: Studio, api: FakeOpenAI, tmp_path: Path
) -> None:
    make_session(studio)
    api.latency = 0.2
    report = run_batch(studio, write(tmp_path, 4, 3), concurrency=3)
    assert (report.succeeded, report.failed) == (12, 0), report.failures[:1]
    assert api.max_in_flight == 3
    assert len(api.requests_to("images/edits")) == 12
    api.assert_no_rejections()
    assert report.spent > 0 and report.spent_unknown == 0


def test_request_rate_is_respected_at_the_server(
    studio: Studio, api: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_session(studio)
    starts = record_limiter_starts(monkeypatch)
    report = run_batch(studio, write(tmp_path, 4, 2), concurrency=4, rpm=300)
    assert report.succeeded == 8
    # 300 a minute: one start every 0.2 s, never a burst ...
    assert len(starts.scheduled) == 8
    assert min(b - a for a, b in pairwise(starts.scheduled)) >= 0.2 - 1e-6  # µs clocks
    # ... and no request reached the server ahead of its turn: at any moment the server has
    # received no more requests than the limiter had let start. (Gaps between measured
    # arrivals carry each call's set-up time, which a busy machine stretches or squeezes.)
    arrivals = sorted(r.received_at for r in api.requests)
    assert len(arrivals) == 8
    local = starts.local
    assert all(arrived >= allowed for arrived, allowed in zip(arrivals, local, strict=True))


def test_a_moderation_refusal_mid_batch_does_not_stop_the_rest(
    studio: Studio, api: FakeOpenAI, tmp_path: Path
) -> None:
    make_session(studio)
    api.latency = 0.05

    def refuse_the_fourth() -> None:
        api.wait_for_requests(3, timeout=20)
        api.fail_next("images/edits", "moderation", categories=["violence"])

    helper = threading.Thread(target=refuse_the_fourth)
    helper.start()
    report = run_batch(studio, write(tmp_path, 4, 2), concurrency=1)
    helper.join(5)
    assert (report.succeeded, report.failed, report.not_run) == (7, 1, 0)
    failed = [r for r in rows(studio.paths.home) if r.status == "failed"]
    assert len(failed) == 1 and failed[0].error_type == "moderation"
    assert failed[0].error_categories == ["violence"]
    assert report.stop_reason == "completed"


def succeeded(home: Path) -> int:
    return sum(1 for r in rows(home) if r.status == "succeeded")


@pytest.mark.slow
def test_sigkill_then_rerun_through_the_real_cli(
    studio: Studio, api: FakeOpenAI, tmp_path: Path
) -> None:
    import subprocess
    import sys

    make_session(studio)
    home = studio.paths.home
    studio.close()
    api.latency = 0.3
    path = write(tmp_path, 4, 4)
    env = cli_env(
        home,
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=api.base_url,
        ONMODEL_BATCH_LEASE="2",  # PostgreSQL: the killed worker's shots are taken over then
    )
    command = [sys.executable, "-m", "onmodel", "batch", "run", str(path), "-c", "4"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: succeeded(home) >= 4, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert 4 <= succeeded(home) < 16
    api.latency = 0.0
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    found = rows(home)
    done = [r for r in found if r.status == "succeeded"]
    assert len(done) == 16 and max(Counter(r.shot_key for r in done).values()) == 1
    assert not [r for r in found if r.status == "pending"]
    with Studio.open(home) as reopened:
        assert all(reopened.blobs.verify(r.sha256 or "", r.format or "") for r in done)
    api.assert_no_rejections()
