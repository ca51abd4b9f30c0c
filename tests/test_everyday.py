"""Everyday use, as a user meets it (issue 13): the version, readable help and output, a demo
that keeps one folder, shots that ask for something, shots refused before anything is
recorded, the library's keyword arguments and typed errors, whole addresses in network errors,
the ChatGPT route in the order of its conversation, and tables that never cut an identifier.

Commands run in-process (``run_cli``) except where the terminal's width or an unset
``ONMODEL_HOME`` is the point: those start ``python -m onmodel`` with that environment.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from cli_inprocess import Outcome, assert_refused_cleanly, run_cli, snapshot
from onmodel.errors import (
    MissingKeyError,
)
from onmodel.handles import Session
from onmodel.providers import FACTORIES
from onmodel.providers.base import GenerationRequest, GenerationResult, Provider, ProviderContext
from onmodel.studio import Studio

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


@pytest.fixture
def session(studio: Studio) -> Session:
    studio.create_character("Mia", prompt="a girl with red hair")
    return studio.start_session("mia", title="Week")


def refused(home: Path, *args: str, says: str = "") -> Outcome:
    """A command refused in one line that leaves the store exactly as it was."""
    before = snapshot(home)
    outcome = run_cli(home, *args)
    assert_refused_cleanly(outcome)
    assert says in outcome.stderr, outcome.stderr
    assert snapshot(home) == before, "a refused command recorded something"
    return outcome


def closed_port() -> int:
    """A port that was free a moment ago: nothing listens there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- 6. a shot that cannot start is refused before anything is recorded ----------------------


def _failed_openai_shot(home: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A failed openai-images shot (a key, but nothing listening), then the key gone."""
    with monkeypatch.context() as keyed:
        keyed.setenv("OPENAI_API_KEY", KEY)
        keyed.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{closed_port()}/v1")
        keyed.setenv("ONMODEL_OPENAI_MAX_RETRIES", "0")
        outcome = run_cli(home, "shot", "--pose", "waving", "--provider", "openai-images")
    assert outcome.code == 1, outcome
    return int(re.findall(r"image (\d+) failed", outcome.stderr)[0])


def test_no_key_refuses_shot_retry_and_batch_before_recording(
    mia: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    says = "OPENAI_API_KEY is not set: export OPENAI_API_KEY="
    refused(mia, "shot", "--pose", "sitting", "--provider", "openai-images", says=says)
    refused(mia, "shot", "--pose", "sitting", "--provider", "openai-responses", says=says)
    failed = _failed_openai_shot(mia, monkeypatch)
    refused(mia, "retry", str(failed), says=says)
    shots = tmp_path / "week.yaml"
    shots.write_text(
        "session: week\ndefaults:\n  provider: openai-images\nshots:\n  - pose: sitting\n"
    )
    refused(mia, "batch", "run", str(shots), says=says)


class _KeyedPlugin(Provider):
    """A plugin's provider that needs a key of its own: known only by its trait."""

    name = "keyed-plugin"
    key_env = "KEYED_PLUGIN_TOKEN"
    offline = True

    def generate(self, request: GenerationRequest) -> GenerationResult:
        raise AssertionError("never called: refused while planning")


def test_a_plugin_that_needs_a_key_is_refused_by_its_trait(
    session: Session, studio: Studio, monkeypatch: pytest.MonkeyPatch
) -> None:
    def plugin(context: ProviderContext) -> Provider:
        return _KeyedPlugin(context)

    monkeypatch.setitem(FACTORIES, "keyed-plugin", plugin)
    monkeypatch.delenv("KEYED_PLUGIN_TOKEN", raising=False)
    before = snapshot(studio.paths.home)
    with pytest.raises(MissingKeyError) as caught:
        session.shot(pose="waving", provider="keyed-plugin")
    assert caught.value.variable == "KEYED_PLUGIN_TOKEN"
    assert "export KEYED_PLUGIN_TOKEN=" in str(caught.value)
    assert snapshot(studio.paths.home) == before
    monkeypatch.setenv("KEYED_PLUGIN_TOKEN", "t")
    assert session.plan(pose="waving", provider="keyed-plugin").provider == "keyed-plugin"


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
