"""The README is run, not read: every fenced snippet, in order, on a fresh data folder, offline.

A user follows the README from top to bottom, so the walk does too. ``bash`` blocks run line by
line through the CLI in-process (``ONMODEL_HOME`` a fresh folder, the working directory a fresh
folder where the files the README saves are written), ``yaml`` blocks are saved under the file
name on their first line (``# mia.yaml``) and loaded as what they are, and ``python`` blocks are
executed. No API key is set, so everything runs on the offline preview provider.

Only the commands in ``SKIPPED`` are left out, each with the reason it is safe to; ``onmodel
serve`` is started for real (on a free port) and asked for its first page. A snippet the walk
does not know how to run fails the test rather than being passed over.
"""

from __future__ import annotations

import http.client
import os
import re
import selectors
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli_inprocess import run_cli
from fakecomfyui import FakeComfyUI
from fakeflux import FakeFlux
from fakegemini import FakeGemini
from onmodel.batch.spec import parse_shot_list
from onmodel.sheet import ModelSheet
from s3server import fixture_s3_server, point_sdk_at, s3_client  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

SKIPPED = {
    "bash scripts/setup && . .venv/bin/activate && onmodel demo": (
        "installs onmodel into .venv and runs the demo: this test already runs inside that "
        "installation; scripts/test (what .ci/run runs on a clean clone) makes the same .venv "
        "with scripts/venv, test_wheel.py installs the built wheel into a fresh venv and runs "
        "the demo, and test_cli.py checks what the demo makes"
    ),
    "pip install onmodel[gemini]": (
        "the gemini extra (google-genai) is in the test extra this run installed, and "
        "test_wheel.py checks the wheel declares it"
    ),
    "pip install onmodel[team]": (
        "the team extra (psycopg, boto3) is in the test extra this run installed, and "
        "test_wheel.py checks the wheel declares it"
    ),
    "bash scripts/test": (
        "the whole test suite, this test included: .ci/run runs exactly this command, so it "
        "is exercised on every CI run (running it here would recurse)"
    ),
}
SERVE = "onmodel serve"

# What each file a yaml block saves is, checked as it is saved; a new yaml block is added here.
YAML_FILES: dict[str, Callable[[Path], object]] = {
    "mia.yaml": ModelSheet.from_yaml_file,
    "bedroom.yaml": ModelSheet.from_yaml_file,
    "week.yaml": lambda path: parse_shot_list(path.read_text(encoding="utf-8"), label=path.name),
}


@dataclass(frozen=True)
class Snippet:
    language: str
    text: str
    line: int  # where the block starts in README.md


def snippets() -> list[Snippet]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        found.append(Snippet(match.group(1), match.group(2), line))
    return found


def commands(snippet: Snippet) -> Iterator[tuple[int, str]]:
    """Each command of a bash block with its README line (``\\`` continues a line)."""
    lines = snippet.text.splitlines()
    index = 0
    while index < len(lines):
        start, command = index, lines[index]
        while command.endswith("\\") and index + 1 < len(lines):
            index += 1
            command = command[:-1] + " " + lines[index]
        index += 1
        if command.strip() and not command.lstrip().startswith("#"):
            yield snippet.line + 1 + start, command


@dataclass
class Walk:
    home: Path
    work: Path
    environ: pytest.MonkeyPatch
    # a studio's own servers named in the README (db.studio.lan, minio.studio.lan), and the
    # walk's local ones that stand in for them
    stand_ins: dict[str, str]

    def run(self, snippet: Snippet) -> None:
        if snippet.language == "bash":
            for line, command in commands(snippet):
                self.shell(line, command)
        elif snippet.language == "yaml":
            self.save(snippet)
        elif snippet.language == "python":
            code = compile(snippet.text, f"README.md:{snippet.line}", "exec")
            exec(code, {"__name__": "readme"})
        else:
            pytest.fail(
                f"README.md:{snippet.line}: the walk cannot run a {snippet.language!r} block"
            )

    def shell(self, line: int, command: str) -> None:
        where = f"README.md:{line}: {command}"
        words = shlex.split(command, comments=True)
        if " ".join(words) in SKIPPED:
            return
        if words[0] == "export":
            # a provider's key, or a studio's settings: set for the commands after it, which
            # reach the walk's local stand-ins for Gemini, BFL and ComfyUI, the studio's
            # PostgreSQL server and its bucket (the ``walk`` fixture), never the internet
            name, _, value = words[1].partition("=")
            self.environ.setenv(name, self.stand_ins.get(name, value))
            return
        assert words and words[0] == "onmodel", f"{where}: the walk runs onmodel commands only"
        if " ".join(words) == SERVE:
            self.serve(where)
            return
        target = None
        if ">" in words:
            words, target = words[: words.index(">")], words[words.index(">") + 1 :]
            assert len(target) == 1, f"{where}: one file after >"
        outcome = run_cli(self.home, *words[1:])
        assert outcome.code == 0, f"{where}\nexit {outcome.code}\n{outcome.stderr}"
        if target is not None:
            (self.work / target[0]).write_text(outcome.stdout, encoding="utf-8")

    def save(self, snippet: Snippet) -> None:
        first = snippet.text.splitlines()[0]
        named = re.match(r"#\s*(\S+\.ya?ml)\b", first)
        assert named, f"README.md:{snippet.line}: a yaml block starts with '# FILE.yaml'"
        name = named.group(1)
        assert name in YAML_FILES, f"README.md:{snippet.line}: what is {name}? add it to YAML_FILES"
        path = self.work / name
        path.write_text(snippet.text, encoding="utf-8")
        YAML_FILES[name](path)

    def serve(self, where: str) -> None:
        """``onmodel serve`` as a process, on a free port (8765 may be taken), until its first
        page is served; then stopped."""
        env = {**os.environ, "ONMODEL_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen(
            [sys.executable, "-m", "onmodel", "serve", "--port", "0"],
            cwd=self.work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            url = _served_url(server)
            assert url is not None, f"{where}: the server did not say where it listens"
            host, port = url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.request("GET", "/", headers={"Host": f"{host}:{port}"})
            response = connection.getresponse()
            page = response.read().decode("utf-8")
            connection.close()
            assert response.status == 200 and "Mia" in page, f"{where}: {response.status}"
        finally:
            server.terminate()
            server.wait(30)
            assert server.stdout is not None
            server.stdout.close()


@pytest.fixture
def walk(
    isolated_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
    s3_server: str,
) -> Iterator[Walk]:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # The README's library example makes its own folder with tempfile.mkdtemp(): keep it here.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    from onmodel.batch import runner

    class Unpaced(runner.RateLimiter):
        """``--rpm 60`` spaces starts a second apart: ten seconds of waiting for the walk's ten
        shots. Pacing is tested in test_batch_run.py and test_batch_server.py; the walk checks
        that the command runs and makes the shots."""

        def __init__(self, rpm: float | None, **kwargs: Any) -> None:
            super().__init__(None, **kwargs)

    class UnpacedShared(runner.SharedRateLimiter):
        """The same for the team section's batch, whose starts come from the database."""

        def delay(self) -> float:
            return 0.0

    monkeypatch.setattr(runner, "RateLimiter", Unpaced)
    monkeypatch.setattr(runner, "SharedRateLimiter", UnpacedShared)
    # the team section's bucket, made as a studio's administrator would (onmodel makes none)
    point_sdk_at(monkeypatch, s3_server, tmp_path)
    s3_client().create_bucket(Bucket="studio-images")
    stand_ins = {"ONMODEL_DATABASE_URL": postgres_url, "AWS_ENDPOINT_URL": s3_server}
    with FakeGemini() as gemini, FakeFlux(key="your-key") as flux, FakeComfyUI() as comfyui:
        flux.default_pending = 0
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
        monkeypatch.setenv("ONMODEL_FLUX_URL", flux.url)
        monkeypatch.setenv("COMFYUI_URL", comfyui.url)
        yield Walk(isolated_home, work, monkeypatch, stand_ins)
        assert not gemini.rejected and not flux.rejected, "a request the real API would refuse"


def _served_url(server: subprocess.Popen[str]) -> str | None:
    """The address the server prints once it listens (None if it ends or stays silent)."""
    assert server.stdout is not None
    with selectors.DefaultSelector() as watch:
        watch.register(server.stdout, selectors.EVENT_READ)
        while watch.select(timeout=60):
            line = server.stdout.readline()
            if not line:
                return None
            found = re.search(r"http://127\.0\.0\.1:\d+", line)
            if found:
                return found.group()
    return None


def test_every_readme_snippet_runs_in_order_on_a_fresh_data_folder(walk: Walk) -> None:
    found = snippets()
    assert [s.language for s in found].count("bash") >= 4  # the walk found the blocks
    for snippet in found:
        walk.run(snippet)
    # what the README's commands said they would make is there
    assert (walk.work / "mia-export" / "index.html").is_file()
    assert (walk.work / "shotlist.schema.json").stat().st_size > 0


def test_every_skipped_command_is_still_in_the_readme() -> None:
    """A skip whose command left the README would hide nothing; keep the list honest."""
    written = {
        " ".join(shlex.split(command, comments=True))
        for snippet in snippets()
        if snippet.language == "bash"
        for _, command in commands(snippet)
    }
    assert set(SKIPPED) <= written
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test" in ci
