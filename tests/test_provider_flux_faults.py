"""The flux provider when things go wrong: every BFL failure is one line, a non-zero exit and
a failed row of the right kind (with the task id once there is one); waits are bounded and
honour Retry-After; the key goes nowhere but BFL's API."""

from __future__ import annotations

import hashlib
import io
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from cli_inprocess import run_cli
from fakeflux import KEY, FakeFlux, TaskPlan
from onmodel.providers.base import GenerationRequest, InputImage, ProviderError
from onmodel.providers.flux import FluxProvider


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFlux]:
    with FakeFlux() as server:
        server.default_pending = 0
        monkeypatch.setenv("BFL_API_KEY", KEY)
        monkeypatch.setenv("ONMODEL_FLUX_URL", server.url)
        monkeypatch.setenv("ONMODEL_FLUX_MAX_RETRIES", "0")
        yield server


@pytest.fixture
def series(isolated_home: Path, fake: FakeFlux) -> Path:
    for args in (
        ("character", "new", "Mia", "--prompt", "a girl with red hair", "--provider", "flux"),
        ("session", "new", "mia", "--provider", "flux"),
    ):
        assert run_cli(isolated_home, *args).code == 0
    return isolated_home


def last_row(home: Path) -> sqlite3.Row:
    with sqlite3.connect(home / "onmodel.db") as db:
        db.row_factory = sqlite3.Row
        row: sqlite3.Row = db.execute("SELECT * FROM image ORDER BY id DESC").fetchone()
        return row


def count_rows(home: Path) -> int:
    with sqlite3.connect(home / "onmodel.db") as db:
        return int(db.execute("SELECT count(*) FROM image").fetchone()[0])


# ------------------------------------------------------------------------ through the CLI


@pytest.mark.parametrize(
    ("status", "kind", "said"),
    [
        (402, "quota", "out of credit (HTTP 402): Insufficient credits"),
        (403, "auth", "check the API key"),
        (422, "invalid_request", "(HTTP 422, field width)"),
        (500, "server", "server error (HTTP 500)"),
        (503, "server", "server error (HTTP 503)"),
    ],
)
def test_a_refused_submission_is_one_line_and_a_failed_row_of_its_kind(
    series: Path, fake: FakeFlux, status: int, kind: str, said: str
) -> None:
    fake.fail_next(status, field="width")
    outcome = run_cli(series, "shot", "waving")
    assert outcome.code != 0
    assert len(outcome.error_lines) == 1 and said in outcome.error_lines[0]
    row = last_row(series)
    assert (row["status"], row["error_type"], row["error_code"]) == ("failed", kind, str(status))


def test_a_rate_limit_longer_than_onmodel_waits_fails_now_saying_the_wait(
    series: Path, fake: FakeFlux
) -> None:
    fake.fail_next(429, retry_after="120")
    outcome = run_cli(series, "shot", "waving")
    assert outcome.code != 0
    assert "rate limit hit (HTTP 429)" in outcome.stderr and "wait 120 s" in outcome.stderr
    assert last_row(series)["error_type"] == "rate_limit"
    assert len(fake.submissions()) == 2  # the anchor's, and this one once


@pytest.mark.parametrize("status", ["Request Moderated", "Content Moderated"])
def test_a_moderated_task_keeps_its_reasons_task_id_and_credits(
    series: Path, fake: FakeFlux, status: str
) -> None:
    fake.next_task(TaskPlan(end=status, details={"Moderation Reasons": ["Derivative Works"]}))
    outcome = run_cli(series, "shot", "waving")
    assert outcome.code != 0 and len(outcome.error_lines) == 1
    assert f"({status}): Derivative Works" in outcome.stderr
    row = last_row(series)
    task_id = list(fake.tasks)[-1]
    assert row["error_type"] == "moderation" and row["response_id"] == task_id
    assert "Derivative Works" in row["error_categories"]
    assert "cost_credits" in row["usage"]  # BFL charged at submission


@pytest.mark.parametrize(
    ("plan", "kind", "said"),
    [
        (TaskPlan(end="Error", details={"reason": "GPU lost"}), "server", "failed (Error)"),
        (TaskPlan(end="Task not found"), "bad_response", "no longer knows task"),
        (TaskPlan(picture=b"<html>not a picture</html>"), "bad_response", "not a readable image"),
    ],
)
def test_a_task_that_ends_without_a_picture_is_recorded_with_its_task_id(
    series: Path, fake: FakeFlux, plan: TaskPlan, kind: str, said: str
) -> None:
    fake.next_task(plan)
    outcome = run_cli(series, "shot", "waving")
    assert outcome.code != 0 and len(outcome.error_lines) == 1 and said in outcome.stderr
    row = last_row(series)
    assert row["error_type"] == kind and row["response_id"] == list(fake.tasks)[-1]


def test_a_task_that_never_finishes_times_out_naming_its_task(
    series: Path, fake: FakeFlux, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONMODEL_FLUX_POLL_SECONDS", "0.2")
    fake.next_task(TaskPlan(forever=True))
    outcome = run_cli(series, "shot", "waving")
    task_id = list(fake.tasks)[-1]
    assert outcome.code != 0 and len(outcome.error_lines) == 1
    assert task_id in outcome.error_lines[0] and "ONMODEL_FLUX_POLL_SECONDS" in outcome.stderr
    row = last_row(series)
    assert (row["error_type"], row["response_id"]) == ("timeout", task_id)


def test_a_bad_setting_is_one_line_naming_the_variable(
    series: Path, fake: FakeFlux, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONMODEL_FLUX_TIMEOUT", "soon")
    outcome = run_cli(series, "shot", "waving")
    assert outcome.code != 0
    assert len(outcome.error_lines) == 1
    assert "ONMODEL_FLUX_TIMEOUT='soon' is not a number of seconds above 0" in outcome.stderr
    assert len(fake.submissions()) == 1  # the anchor only


def test_a_missing_key_is_refused_before_anything_is_recorded_or_sent(
    series: Path, fake: FakeFlux, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BFL_API_KEY")
    before, sent = count_rows(series), len(fake.requests)
    outcome = run_cli(series, "shot", "waving")
    assert outcome.code != 0 and "BFL_API_KEY" in outcome.stderr
    assert count_rows(series) == before and len(fake.requests) == sent
    shown = run_cli(series, "providers")
    assert "set BFL_API_KEY" in shown.stdout


def test_the_key_and_the_signed_address_never_land_in_the_records_or_an_export(
    series: Path, fake: FakeFlux, tmp_path: Path
) -> None:
    fake.next_task(TaskPlan(end="Request Moderated"))
    run_cli(series, "shot", "blocked")
    assert run_cli(series, "shot", "waving").code == 0
    assert run_cli(series, "export", "--to", str(tmp_path / "out")).code == 0
    stored = [series / "onmodel.db", *(p for p in (tmp_path / "out").rglob("*") if p.is_file())]
    for path in stored:
        data = path.read_bytes()
        assert KEY.encode() not in data, path
        assert b"s3cr3t-signature" not in data, path
    assert not fake.key_sent_to_delivery


# ------------------------------------------------------------------ the provider, waits seen


def one_input(tmp_path: Path) -> InputImage:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    path = tmp_path / "anchor.png"
    path.write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    return InputImage("anchor", path, digest, "image/png")


def request(tmp_path: Path, **params: object) -> GenerationRequest:
    return GenerationRequest(
        kind="shot",
        prompt="Mia waving",
        model="flux-2-pro",
        params=dict(params),
        inputs=(one_input(tmp_path),),
    )


def test_a_429_is_retried_after_the_wait_it_asks_for(
    fake: FakeFlux, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONMODEL_FLUX_MAX_RETRIES", "1")
    fake.fail_next(429, retry_after="2")
    waits: list[float] = []
    result = FluxProvider(sleep=waits.append).generate(request(tmp_path, seed=5))
    assert waits == [2.0]
    assert len(fake.submissions()) == 2 and result.sent_params["seed"] == 5
    assert result.returned["cost_credits"] > 0


def test_a_slow_task_is_polled_with_growing_waits_until_ready(
    fake: FakeFlux, tmp_path: Path
) -> None:
    fake.next_task(TaskPlan(pending=4))
    waits: list[float] = []
    result = FluxProvider(sleep=waits.append).generate(request(tmp_path))
    assert waits == [0.5, 0.75, 1.125, 1.6875]
    assert len(fake.polls()) == 5
    assert fake.polls()[0].query == {"id": result.gen_id}  # the polling_url, as handed out
    assert result.format == "png"


def test_polling_stops_at_its_limit_and_the_error_names_the_task(
    fake: FakeFlux, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONMODEL_FLUX_POLL_SECONDS", "10")
    fake.next_task(TaskPlan(forever=True))
    waits: list[float] = []
    with pytest.raises(ProviderError) as caught:
        FluxProvider(sleep=waits.append).generate(request(tmp_path))
    task_id = list(fake.tasks)[-1]
    # growing waits, the last one cut to the limit
    assert waits == [0.5, 0.75, 1.125, 1.6875, 2.53125, 3.40625]
    assert caught.value.kind == "timeout" and caught.value.response_id == task_id
    assert str(caught.value) == (
        f"FLUX (Black Forest Labs) task {task_id} was still Pending after 10 s "
        "(set ONMODEL_FLUX_POLL_SECONDS to wait longer)"
    )


def test_steps_on_a_model_other_than_flex_are_refused_before_sending(
    fake: FakeFlux, tmp_path: Path
) -> None:
    provider = FluxProvider()
    pro = provider.context.capability("flux-2-pro")
    assert pro is not None
    problems = provider.param_problems(request(tmp_path, steps=20).params, pro)
    assert problems == ["steps work only on flux-2-flex, not flux-2-pro"]
    assert fake.requests == []


def test_credits_charged_before_a_failure_are_priced_from_the_usage() -> None:
    from onmodel.capabilities import load_prices

    prices = load_prices()
    provider = FluxProvider()
    assert provider.cost("flux-2-pro", {"cost_credits": 4.5}, {}, prices) == Decimal("0.045")
    # nothing reported: the picture's own size, at the megapixel prices
    assert provider.cost("flux-2-pro", None, {"size": "1024x1024"}, prices) == Decimal("0.045")
    assert provider.cost("flux-2-pro", None, {}, prices) is None
