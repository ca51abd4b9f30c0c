"""Helpers shared by the batch tests (this module holds no tests).

``FakeImages`` stands in for the ``openai-images`` provider inside one process: it sleeps a
fixed latency, counts calls in flight, refuses prompts containing a marker word like the
moderation system would, and returns real PNG bytes with ``usage`` so costs add up as they do
for the real API. ``cli`` runs the real ``onmodel`` entry point in a subprocess, optionally
with ``FakeImages`` installed (via ``ONMODEL_TEST_FAKE_LATENCY``), so kill-and-resume tests
exercise the CLI exactly as a user runs it.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from sqlmodel import col, select

from onmodel.handles import Session
from onmodel.providers import FACTORIES
from onmodel.providers.base import GenerationRequest, GenerationResult, Provider, ProviderError
from onmodel.store.database import create_database_engine, transaction
from onmodel.store.models import ImageRow
from onmodel.studio import Studio

TESTS = Path(__file__).parent
REFUSE_WORD = "FORBIDDEN"


def png(seed: str, size: tuple[int, int] = (16, 16)) -> bytes:
    digest = hashlib.sha256(seed.encode()).digest()
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (digest[0], digest[1], digest[2])).save(buffer, format="PNG")
    return buffer.getvalue()


class FakeImages(Provider):
    """An in-process ``openai-images`` double: latency, in-flight counting, refusals, usage."""

    name = "openai-images"

    def __init__(self, latency: float = 0.0, refuse: str | None = REFUSE_WORD) -> None:
        super().__init__()
        self.latency = latency
        self.latency_for: Callable[[str], float] | None = None  # per prompt, overrides latency
        self.refuse = refuse
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.starts: list[float] = []
        self.prompts: list[str] = []

    def api_route(self, n_input_images: int) -> str:
        return "images.edit" if n_input_images else "images.generate"

    def generate(self, request: GenerationRequest) -> GenerationResult:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.starts.append(time.monotonic())
            self.prompts.append(request.prompt)
        try:
            delay = self.latency_for(request.prompt) if self.latency_for else self.latency
            if delay:
                time.sleep(delay)
            if self.refuse and self.refuse in request.prompt:
                raise ProviderError(
                    "Your request was rejected by the safety system.",
                    kind="moderation",
                    code="moderation_blocked",
                    categories=["violence"],
                )
            usage = {
                "input_tokens": 400,
                "input_tokens_details": {"text_tokens": 300, "image_tokens": 100},
                "output_tokens": 196,
                "output_tokens_details": {"image_tokens": 196, "text_tokens": 0},
                "total_tokens": 596,
            }
            return GenerationResult(
                data=png(request.prompt),
                format="png",
                sent_params={"model": request.model, **request.params},
                usage=usage,
            )
        finally:
            with self.lock:
                self.in_flight -= 1


def install_fake_images(latency: float = 0.0) -> FakeImages:
    """Register one shared FakeImages as ``openai-images`` (for subprocesses; tests use
    ``monkeypatch.setitem`` instead so the registry is restored)."""
    fake = FakeImages(latency=latency)
    FACTORIES["openai-images"] = lambda context: fake
    return fake


def make_session(
    studio: Studio,
    *,
    provider: str = "openai-images",
    slug: str = "week",
    params: dict[str, Any] | None = None,
) -> Session:
    """An imported anchor (no provider call) and a session on ``provider``."""
    studio.paths.home.mkdir(parents=True, exist_ok=True)
    anchor = studio.paths.home / "anchor.png"
    anchor.write_bytes(png("anchor", (64, 64)))
    studio.import_character("Mia", anchor, prompt="a cheerful girl with orange hair")
    return studio.start_session(
        "mia",
        title="week",
        slug=slug,
        provider=provider,
        model="gpt-image-2",
        params=params if params is not None else {"size": "1024x1024", "quality": "low"},
    )


_CHILD = (
    "import os, sys\n"
    "sys.path.insert(0, {tests!r})\n"
    "latency = os.environ.get('ONMODEL_TEST_FAKE_LATENCY')\n"
    "if latency is not None:\n"
    "    from test_batch_support import install_fake_images\n"
    "    install_fake_images(float(latency))\n"
    "from onmodel.cli.app import main\n"
    "main()\n"
)


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", _CHILD.format(tests=str(TESTS)), *args]


def cli_env(home: Path, *, latency: float | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ONMODEL_"))}
    env["ONMODEL_HOME"] = str(home)
    if "ONMODEL_DATABASE_URL" in os.environ:  # the PostgreSQL run (tests/conftest.py)
        env["ONMODEL_DATABASE_URL"] = os.environ["ONMODEL_DATABASE_URL"]
    env["COLUMNS"] = "200"
    if latency is not None:
        env["ONMODEL_TEST_FAKE_LATENCY"] = str(latency)
    env.update(extra)
    return env


def cli(
    home: Path, *args: str, latency: float | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run ``onmodel ARGS`` to completion in a subprocess."""
    return subprocess.run(
        cli_command(*args),
        capture_output=True,
        text=True,
        env=cli_env(home, latency=latency, **extra),
        timeout=120,
    )


def start_cli(
    home: Path, *args: str, latency: float | None = None, **extra: str
) -> subprocess.Popen[str]:
    """Start ``onmodel ARGS`` in a subprocess, to be signalled by the test."""
    return subprocess.Popen(
        cli_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(home, latency=latency, **extra),
    )


def rows(home: Path) -> list[ImageRow]:
    """Every batch image row, read through a separate engine (as another process would)."""
    url = os.environ.get("ONMODEL_DATABASE_URL") or f"sqlite:///{home / 'onmodel.db'}"
    engine = create_database_engine(url)
    try:
        with transaction(engine) as db:
            found = db.exec(
                select(ImageRow)
                .where(col(ImageRow.shot_key).is_not(None))
                .order_by(col(ImageRow.id))
            ).all()
            return list(found)
    finally:
        engine.dispose()


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
