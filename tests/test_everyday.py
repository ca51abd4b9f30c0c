"""Everyday use, as a user meets it (issue 13): the version, readable help and output, a demo
that keeps one folder, shots that ask for something, shots refused before anything is
recorded, the library's keyword arguments and typed errors, whole addresses in network errors,
the ChatGPT route in the order of its conversation, and tables that never cut an identifier.

Commands run in-process (``run_cli``) except where the terminal's width or an unset
``ONMODEL_HOME`` is the point: those start ``python -m onmodel`` with that environment.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer

from cli_inprocess import Outcome, assert_refused_cleanly, run_cli, snapshot
from fakeopenai import EDITS, FakeOpenAI
from onmodel import __version__
from onmodel.capabilities import load_capabilities
from onmodel.cli.app import app
from onmodel.errors import (
    EmptyRequestError,
    MissingKeyError,
    NoImageFileError,
    UsageError,
    ValidationError,
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


def onmodel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m onmodel ARGS`` as a terminal runs it: no onmodel or OpenAI settings but
    ``env``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ONMODEL_", "OPENAI_"))}
    environment = {**inherited, **env}
    return subprocess.run(
        [sys.executable, "-m", "onmodel", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


# --- 1. --version ---------------------------------------------------------------------------


def test_version_prints_the_package_version(home: Path) -> None:
    outcome = run_cli(home, "--version")
    assert outcome.code == 0, outcome
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert outcome.stdout.strip() == f"onmodel {version('onmodel')}"
    assert version("onmodel") == project["version"] == __version__
    assert not (home / "onmodel.db").exists()  # nothing opened for it


# --- 2. help names values in words ----------------------------------------------------------


def _command_paths() -> Iterator[tuple[str, ...]]:
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


TYPER_TYPES = re.compile(r"<(?:bool|str|int|float|Path|list\[[^>]*\]|[a-z]+ range)>")


@pytest.mark.parametrize("path", list(_command_paths()), ids=" ".join)
def test_help_never_shows_python_types(home: Path, path: tuple[str, ...]) -> None:
    outcome = run_cli(home, *path, "--help")
    assert outcome.code == 0, outcome
    assert "--help" in outcome.stdout
    assert not TYPER_TYPES.search(outcome.stdout), outcome.stdout


def test_a_command_list_shows_each_summary_as_one_line_that_wraps() -> None:
    """A group's list shows each command's first docstring paragraph; with the docstring's
    own line breaks in it, rich printed a line ending mid-sentence and the rest below it."""
    from onmodel.cli.app import _command

    def walk(command: Any) -> Iterator[Any]:
        for sub in getattr(command, "commands", {}).values():
            yield sub
            yield from walk(sub)

    for command in walk(_command()):
        shown = command.short_help or (command.help or "").split("\n\n")[0]
        assert "\n" not in shown, (command.name, shown)


def test_shot_help_names_its_values(home: Path) -> None:
    text = run_cli(home, "shot", "--help").stdout
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ --")}
    assert "PATH" in lines["--ref"] and "NUMBER" in lines["--max-cost"]
    assert "TEXT" in lines["--pose"]
    for flag in ("--dry-run", "--json", "--same", "--help"):  # a flag takes no value
        assert not re.search(r"\b[A-Z]{2,}\b|<", lines[flag].split("│")[1].split(flag)[1][:12])


# --- 3. the demo keeps one folder -------------------------------------------------------------


def test_demo_without_a_folder_reuses_one_and_says_how_to_remove_it(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path), "COLUMNS": "200"}
    first, second = onmodel("demo", env=env), onmodel("demo", env=env)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    folder = tmp_path / "cache" / "onmodel-demo"
    for run in (first, second):
        assert f"data folder: {folder}\n" in run.stdout
        assert f"remove it with: rm -rf {folder}" in run.stdout
        assert "city street" in run.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]  # no temporary folders elsewhere
    # the same pictures, kept once: four anchors (Mia, Rin, Max, the bedroom), six shots of
    # Mia, one of her cast and the two takes of the retake
    assert len(list((folder / "blobs").rglob("*.png"))) == 13
    assert "tree mia-s-week-2" in second.stdout  # the second run's own series


def test_demo_uses_an_explicit_onmodel_home(home: Path) -> None:
    outcome = run_cli(home, "demo")
    assert outcome.code == 0, outcome
    assert f"data folder: {home.resolve()}" in outcome.stdout
    assert "rm -rf" not in outcome.stdout  # the user's own data folder is never offered up
    with Studio.open(home) as studio:
        slugs = ["mia-demo", "rin-demo", "max-demo", "bedroom-demo"]
        assert [c.slug for c in studio.characters()] == slugs  # the demo's own, made once
        assert studio.current_session() is None  # the user's current session is left alone
    again = run_cli(home, "demo")
    assert again.code == 0 and "tree mia-s-week-2" in again.stdout


def test_demo_refuses_a_folder_of_other_files(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"not ours")
    refused(home, "demo", "--dir", str(other), says="holds other files")
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]


# --- 4. show and --dry-run print readable fields ----------------------------------------------


def test_show_prints_fields_not_python_dicts(mia: Path) -> None:
    made = run_cli(
        mia, "shot", "--pose", "sitting", "--scene", "park, at dusk", "--size", "1024x1536"
    )
    assert made.code == 0, made
    shown = run_cli(mia, "show", "3").stdout
    assert "{" not in shown and "': " not in shown, shown
    assert "request:\n  pose: sitting\n  scene: park, at dusk\n" in shown
    assert re.search(r"^parameters: (.*, )?size=1024x1536", shown, re.M), shown
    assert re.search(r"^returned: size=\d+x\d+, output_format=png$", shown, re.M), shown
    assert "\nusage: -\n" in shown


def test_show_prints_a_failure_and_usage_as_fields(
    mia: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    made = run_cli(mia, "shot", "--pose", "sitting", "--provider", "openai-images")
    assert made.code == 0, made
    shown = run_cli(mia, "show", "3").stdout
    assert re.search(r"^usage: input_tokens=\d+, .*input_tokens_details\.\w+=\d+", shown, re.M)
    assert re.search(r"^returned: .*size=\S+", shown, re.M), shown
    fake_openai.fail_next(EDITS, "auth")
    failed = run_cli(mia, "shot", "--pose", "jumping", "--provider", "openai-images")
    assert failed.code == 1
    shown = run_cli(mia, "show", "4").stdout
    assert re.search(r"^error: auth( \(\w+\))?: OpenAI rejected the API key", shown, re.M), shown
    assert "{" not in shown.split("prompt:")[0]
    shown = run_cli(mia, "show", "3").stdout  # the input images sent, as words
    assert re.search(r"^parameters: .*images=\[role=anchor sha256=[0-9a-f]{64}", shown, re.M)
    assert "'role'" not in shown


def test_show_names_the_sheet_version_the_tags_and_a_hidden_image(mia: Path) -> None:
    assert run_cli(mia, "character", "sheet", "mia", "--set", "hair=short pixie cut").code == 0
    assert run_cli(mia, "shot", "--pose", "waving").code == 0
    assert run_cli(mia, "tag", "3", "keeper").code == 0
    assert run_cli(mia, "hide", "2").code == 0
    before, after = run_cli(mia, "show", "2").stdout, run_cli(mia, "show", "3").stdout
    assert "\nmodel sheet: version 1\n" in before and "\nmodel sheet: version 2\n" in after
    assert "\ntags: keeper\n" in after and "\ntags: -\n" in before
    assert re.search(r"^hidden: since \S+ \(onmodel unhide 2\)$", before, re.M), before
    assert "hidden:" not in after
    data = json.loads(run_cli(mia, "show", "3", "--json").stdout)
    assert (data["sheet_version"], data["tags"], data["hidden_at"]) == (2, ["keeper"], None)


def test_dry_run_prints_the_parameters_readably(mia: Path) -> None:
    plain = run_cli(mia, "shot", "--pose", "sitting", "--dry-run").stdout
    assert plain.splitlines()[0] == "preview / gpt-image-2"
    sized = run_cli(
        mia, "shot", "--pose", "a", "--dry-run", "--size", "1024x1536", "--quality", "low"
    )
    assert sized.stdout.splitlines()[0] == "preview / gpt-image-2: size=1024x1536, quality=low"
    assert "{" not in sized.stdout.split("\n", 3)[2]


# --- 5. a shot asks for something, or explicitly for the same character -----------------------


def test_a_shot_without_a_request_is_refused_unless_same(mia: Path) -> None:
    outcome = refused(mia, "shot", says="asks for nothing")
    assert "--same" in outcome.stderr and "--pose" in outcome.stderr
    refused(mia, "shot", "--same", "--pose", "waving", says="drop one of them")
    same = run_cli(mia, "shot", "--same")
    assert same.code == 0 and "'same character'" in same.stdout


def test_the_library_asks_for_a_request_too(session: Session) -> None:
    with pytest.raises(EmptyRequestError):
        session.shot()
    with pytest.raises(EmptyRequestError):
        session.plan()
    assert isinstance(EmptyRequestError("x"), UsageError)
    assert session.images() == []
    same = session.shot(same=True)
    assert same.succeeded and same.label == "same character"


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


# --- 7. the library: keyword parameters, typed errors, images and tree, short reprs ----------


def test_size_and_quality_are_keyword_arguments(session: Session) -> None:
    plan = session.plan(pose="waving", size="1024x1536", quality="low")
    assert plan.params["size"] == "1024x1536" and plan.params["quality"] == "low"
    shot = session.shot(pose="waving", size="1024x1536", quality="low")
    assert shot.params["size"] == "1024x1536"  # what the preview sends is what it records
    with pytest.raises(ValidationError):
        session.plan(pose="waving", size="7x7")
    with pytest.raises(ValidationError):
        session.shot(pose="waving", quality="dazzling")


def test_read_bytes_of_a_pending_image_is_a_typed_error(session: Session) -> None:
    pending = session.shot(pose="waving", provider="chatgpt")
    with pytest.raises(NoImageFileError) as caught:
        pending.read_bytes()
    assert caught.value.status == "pending" and f"image {pending.id}" in str(caught.value)


def test_images_leaves_the_anchor_out_and_tree_starts_at_it(session: Session) -> None:
    one = session.shot(pose="waving")
    two = session.shot(pose="sitting")
    anchor = session.character.anchor
    assert anchor is not None
    assert [i.id for i in session.images()] == [one.id, two.id]
    root = session.tree()
    assert root.image.id == anchor.id and root.children[0].image.id == one.id
    assert session.lineage().roots == [anchor.id]
    assert "anchor" in (Session.images.__doc__ or "") and "anchor" in (Session.tree.__doc__ or "")


def test_reprs_are_one_short_line(session: Session) -> None:
    shot = session.shot(text="a long request " * 20)
    character = session.character
    for handle, starts in (
        (session, f"Session(id={session.id}, slug='week'"),
        (character, f"Character(id={character.id}, slug='mia'"),
        (shot, f"Image(id={shot.id}, kind='shot', label='a long request"),
    ):
        text = repr(handle)
        assert text.startswith(starts) and "\n" not in text and len(text) < 120, text
    assert "status='succeeded'" in repr(shot)


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


# --- 9. the ChatGPT route follows its conversation ---------------------------------------------


MESSAGE = re.compile(r"^— message (\d+) to paste into ChatGPT(?:, with (.+) attached)? —$", re.M)


def test_chatgpt_messages_are_numbered_along_the_conversation(mia: Path, tmp_path: Path) -> None:
    assert (
        run_cli(mia, "session", "new", "mia", "--title", "Chat", "--provider", "chatgpt").code == 0
    )
    first = run_cli(mia, "shot", "--expression", "crying", "--scene", "park")
    second = run_cli(mia, "shot", "--pose", "waving")
    assert first.code == 0 and second.code == 0, first.stderr + second.stderr

    headers = MESSAGE.findall(first.stdout)
    assert [number for number, _ in headers] == ["1", "2"]
    attached = Path(headers[0][1])
    assert attached.name == "mia-anchor.png" and headers[1][1] == ""
    with Studio.open(mia) as studio:
        anchor = studio.character("mia").anchor
        assert anchor is not None and attached.read_bytes() == anchor.read_bytes()
    assert [number for number, _ in MESSAGE.findall(second.stdout)] == ["3"]

    for message in (first.stdout, second.stdout):
        pasted = [line for line in message.splitlines() if "draw a new image" in line]
        assert pasted and not any(line.rstrip().endswith(";") for line in pasted), pasted
    assert "expression: crying; scene: park\n" in first.stdout

    ids = [int(i) for i in re.findall(r"onmodel attach (\d+) FILE", first.stdout + second.stdout)]
    with Studio.open(mia) as studio:
        assert studio.image(ids[1]).parent_id == ids[0]  # the second follows the first

    picture = tmp_path / "saved.png"
    picture.write_bytes(attached.read_bytes())
    refused(mia, "attach", str(ids[1]), str(picture), says=f"attach image {ids[0]} first")
    assert run_cli(mia, "attach", str(ids[0]), str(picture)).code == 0
    assert run_cli(mia, "attach", str(ids[1]), str(picture)).code == 0
    third = run_cli(mia, "shot", "--action", "reading")
    assert [number for number, _ in MESSAGE.findall(third.stdout)] == ["4"]
    with Studio.open(mia) as studio:
        assert studio.session("chat").head_image_id == ids[1]
        later = max(i.id for i in studio.session_images("chat"))
        assert studio.image(later).parent_id == ids[1]


# --- 10. tables never cut identifiers -----------------------------------------------------------


@pytest.mark.parametrize("columns", ["80", "40"])
def test_models_shows_whole_model_names_at_any_width(home: Path, columns: str) -> None:
    run = onmodel("models", "--all", env={"ONMODEL_HOME": str(home), "COLUMNS": columns})
    assert run.returncode == 0, run.stderr
    names = [capability.name for capability in load_capabilities(None)]
    words = set(re.split(r"[\s│┃]+", run.stdout))
    assert "…" not in run.stdout
    for name in names:
        assert name in words, (name, run.stdout)
    assert all(len(line) <= int(columns) for line in run.stdout.splitlines())


@pytest.mark.parametrize("columns", ["80", "50"])
def test_session_list_never_cuts_a_slug(home: Path, columns: str) -> None:
    """The slug is what the next command needs typed: a narrow terminal drops the title and
    the model first, and never cuts a slug, a character or a head id."""
    env = {"ONMODEL_HOME": str(home), "COLUMNS": columns}
    made = onmodel("character", "new", "Mia Long-Name", "--prompt", "a girl", env=env)
    assert made.returncode == 0, made.stderr
    title = "A very long title for a week of everyday shots"
    made = onmodel("session", "new", "mia-long-name", "--title", title, env=env)
    assert made.returncode == 0, made.stderr
    run = onmodel("session", "list", env=env)
    assert run.returncode == 0, run.stderr
    words = set(re.split(r"[\s│┃:]+", run.stdout))
    assert "…" not in run.stdout
    (listed,) = json.loads(onmodel("session", "list", "--json", env=env).stdout)
    assert {listed["slug"], "mia-long-name", str(listed["head_image_id"])} <= words, run.stdout
    assert all(len(line) <= int(columns) for line in run.stdout.splitlines())


@pytest.mark.parametrize("columns", ["80", "50"])
def test_batch_list_and_status_never_cut_a_name(home: Path, tmp_path: Path, columns: str) -> None:
    env = {"ONMODEL_HOME": str(home), "COLUMNS": columns}
    assert onmodel("character", "new", "Mia", "--prompt", "a girl", env=env).returncode == 0
    title = "spring collection lookbook shoot week three"
    assert onmodel("session", "new", "mia", "--title", title, env=env).returncode == 0
    session = json.loads(onmodel("session", "list", "--json", env=env).stdout)[0]["slug"]
    shot_list = tmp_path / "spring-collection-lookbook-week-three-retakes.yaml"
    shot_list.write_text(f"session: {session}\nshots:\n  - pose: waving\n  - pose: sitting\n")
    ran = onmodel("batch", "run", str(shot_list), env=env)
    assert ran.returncode == 0, ran.stderr
    for args in (("batch", "list"), ("batch", "status", str(shot_list))):
        shown = onmodel(*args, env=env)
        assert shown.returncode == 0, shown.stderr
        words = set(re.split(r"[\s│┃:]+", shown.stdout))
        assert "…" not in shown.stdout, shown.stdout
        assert session in words, shown.stdout
        table = [line for line in shown.stdout.splitlines() if line[:1] in "┏┃┡│└"]
        assert all(len(line) <= int(columns) for line in table), shown.stdout
    assert shot_list.stem in set(re.split(r"[\s│┃:]+", onmodel("batch", "list", env=env).stdout))


def test_a_session_that_switches_to_chatgpt_starts_the_conversation(mia: Path) -> None:
    """The session already has a shot made another way: its first ChatGPT shot still begins
    the chat, with the primer and the file to attach."""
    first = run_cli(mia, "shot", "--provider", "chatgpt", "--pose", "sitting")
    assert first.code == 0, first.stderr
    headers = MESSAGE.findall(first.stdout)
    assert [number for number, _ in headers] == ["1", "2"], first.stdout
    assert Path(headers[0][1]).name == "mia-anchor.png" and Path(headers[0][1]).exists()
    second = run_cli(mia, "shot", "--provider", "chatgpt", "--pose", "waving")
    assert [number for number, _ in MESSAGE.findall(second.stdout)] == ["3"], second.stdout
