"""Fixtures shared by the export, web and browser tests: a small series with a branch and a
failure, a preview provider the tests can hold or break, and the web server on a free port.

Imported by those modules (``from test_web_fixtures import ...``); it holds no tests itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from onmodel.errors import GenerationError
from onmodel.providers import FACTORIES
from onmodel.providers.base import GenerationRequest, GenerationResult, ProviderError
from onmodel.providers.preview import PreviewProvider
from onmodel.sheet import ModelSheet
from onmodel.studio import Studio
from onmodel.web.app import GalleryApp
from onmodel.web.server import make_server

SHEET = ModelSheet(
    hair_color="#d22b2b",
    eye_color="#2e8b57",
    outfit_colors=["#1e6fd9"],
    palette=["#d22b2b", "#1e6fd9"],
    must_keep=["star hair clip"],
)
FAIL_WORD = "EXPLODE"  # a shot whose free text holds this word fails like a refused request


class Controls:
    """Lets a test hold every generation (to see a pending card) and then release it."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def hold(self) -> None:
        self.started.clear()
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()


class ControlledPreview(PreviewProvider):
    """The real preview provider, plus a gate and a scripted failure."""

    def __init__(self, controls: Controls) -> None:
        super().__init__()
        self.controls = controls

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self.controls.started.set()
        if not self.controls.gate.wait(timeout=60):
            raise ProviderError("the test never released the shot", kind="timeout")
        if FAIL_WORD in request.request.text:
            raise ProviderError(
                "Your request was rejected by the safety system.",
                kind="moderation",
                code="moderation_blocked",
                categories=["violence"],
            )
        return super().generate(request)


@pytest.fixture
def controls(monkeypatch: pytest.MonkeyPatch) -> Controls:
    found = Controls()
    monkeypatch.setitem(FACTORIES, "preview", lambda context: ControlledPreview(found))
    return found


@dataclass(frozen=True)
class Series:
    """Ids of a session: anchor → crying → guitar, a branch from crying, and a failure."""

    session: str
    anchor: int
    crying: int
    guitar: int
    branch: int
    failed: int

    @property
    def parents(self) -> dict[int, int | None]:
        return {
            self.anchor: None,
            self.crying: self.anchor,
            self.guitar: self.crying,
            self.branch: self.crying,
            self.failed: self.guitar,
        }


@pytest.fixture
def series(studio: Studio, controls: Controls) -> Series:
    character = studio.create_character(
        "Rin", prompt="a girl with red hair and green eyes in a blue jacket", sheet=SHEET
    )
    session = studio.start_session(character, title="Rin's day")
    crying = session.shot(expression="crying")
    guitar = session.shot(pose="playing guitar")
    branch = session.shot(action="taking a selfie with a dog", from_image=crying.id)
    with pytest.raises(GenerationError) as failure:
        session.shot(f"{FAIL_WORD} everything", from_image=guitar.id)
    assert failure.value.image_id is not None
    anchor = character.anchor
    assert anchor is not None
    return Series(
        session=session.slug,
        anchor=anchor.id,
        crying=crying.id,
        guitar=guitar.id,
        branch=branch.id,
        failed=failure.value.image_id,
    )


@dataclass(frozen=True)
class Served:
    url: str  # http://127.0.0.1:PORT (no trailing slash)
    host: str  # what a browser sends as Host
    app: GalleryApp
    studio: Studio
    home: Path


@pytest.fixture
def served(studio: Studio, isolated_home: Path) -> Iterator[Served]:
    log: list[str] = []  # request lines stay out of the test output
    server, app = make_server(studio, "127.0.0.1", 0, allow_remote=False, log=log.append)
    port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", app, studio, isolated_home)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        app.runner.join(30)
