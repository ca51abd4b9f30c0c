"""The CLI's collector tuning (and nobody else's), and providers warmed up ahead of a batch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fakeopenai import FakeOpenAI
from onmodel.providers import warm_up_in_background
from onmodel.providers.openai.client import make_client


def run_python(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter (the collector's state is the process's), in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        env={"ONMODEL_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_the_cli_collector_keeps_collecting_through_a_batch_loop(isolated_home: Path) -> None:
    # In a fresh interpreter, as the CLI starts: the collector waits longer between runs but
    # stays on while a batch runs, so memory does not grow with the number of shots.
    result = run_python(
        """
        import gc
        from onmodel.startup import CLI_THRESHOLDS, tune_collector
        tune_collector()
        from onmodel import Studio
        from onmodel.batch import runner, run_batch
        seen = []
        original = runner.BatchRunner._request
        def request(self, job):
            seen.append((gc.isenabled(), gc.get_threshold()))
            return original(self, job)
        runner.BatchRunner._request = request
        with Studio.open() as studio:
            studio.create_character("Mia", prompt="a girl", provider="preview")
            studio.start_session("mia", slug="week", provider="preview")
            open("list.yaml", "w").write("session: week\\nshots:\\n  - pose: waving\\n")
            report = run_batch(studio, "list.yaml", handle_signals=False)
        assert report.succeeded == 1 and seen == [(True, CLI_THRESHOLDS)], (report, seen)
        print("ok")
        """,
        isolated_home,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_library_users_keep_their_collector(isolated_home: Path) -> None:
    result = run_python(
        """
        import gc
        gc.set_threshold(123, 4, 5)  # the host application's choice, not onmodel's
        from onmodel import Studio
        with Studio.open() as studio:
            studio.create_character("Mia", prompt="a girl", provider="preview")
        assert gc.isenabled() and gc.get_threshold() == (123, 4, 5)
        print("ok")
        """,
        isolated_home,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_warm_up_builds_the_client_the_first_request_uses(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-warm-up")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    thread = warm_up_in_background(["openai-images", "preview", "openai-images"])
    thread.join(30)
    assert not thread.is_alive()
    client = make_client()
    assert "images" in vars(client)  # the resource the first edit needs is loaded already
    assert fake_openai.requests == []  # warming up sends nothing


def test_warm_up_leaves_failures_to_the_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # No API key and an unknown name: the thread ends quietly; the shot reports the problem.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    thread = warm_up_in_background(["openai-responses", "no-such-provider"])
    thread.join(30)
    assert not thread.is_alive()


def test_help_loads_no_database_sdk_or_image_library() -> None:
    """``onmodel --help`` (and tab completion, and every typo) pays for the CLI alone: the
    database layer, the openai SDK and the image analysis behind checks load when a command
    needs them. One module-level import of the wrong file once made it three times slower."""
    heavy = ["sqlalchemy", "sqlmodel", "openai", "skimage", "numpy", "scipy", "pydantic", "PIL"]
    probe = (
        f"import sys, onmodel.cli.app; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
