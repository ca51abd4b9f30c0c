"""Everyday use, as a user meets it (issue 13): the version, readable help and output, a demo
that keeps one folder, shots that ask for something, shots refused before anything is
recorded, the library's keyword arguments and typed errors, whole addresses in network errors,
the ChatGPT route in the order of its conversation, and tables that never cut an identifier.

Commands run in-process (``run_cli``) except where the terminal's width or an unset
``ONMODEL_HOME`` is the point: those start ``python -m onmodel`` with that environment.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cli_inprocess import assert_refused_cleanly, run_cli

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-not-real"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def mia(home: Path) -> Path:
    """A character with a current session and one shot, made offline."""
    assert run_cli(home, "character", "new", "Mia", "--prompt", "a girl with red hair").code == 0
    assert run_cli(home, "session", "new", "mia", "--title", "Week").code == 0
    assert run_cli(home, "shot", "--pose", "waving").code == 0
    return home


def closed_port() -> int:
    """A port that was free a moment ago: nothing listens there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- 8. a network error names the whole address -----------------------------------------------


def test_a_network_error_names_the_whole_address(
    mia: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
    outcome = run_cli(mia, "shot", "--pose", "waving", "--provider", "openai-images")
    assert_refused_cleanly(outcome)
    assert f"could not reach OpenAI at http://127.0.0.1:{port}/v1/" in outcome.stderr
