"""Every test gets its own data directory and no API key, so nothing leaks between tests
and nothing can reach a real service."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest_fakeopenai import fake_openai  # noqa: F401
from onmodel.studio import Studio


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ONMODEL_HOME", str(home))
    for name in (
        *("OPENAI_API_KEY", "OPENAI_BASE_URL", "ONMODEL_DATABASE_URL", "OPENAI_ORG_ID"),
        *(
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
            "GOOGLE_GEMINI_BASE_URL",
            "GOOGLE_GENAI_USE_VERTEXAI",
        ),
        *("BFL_API_KEY", "ONMODEL_FLUX_URL", "COMFYUI_URL", "ONMODEL_COMFYUI_WORKFLOW"),
        *("ONMODEL_COMFYUI_ANCHOR_WORKFLOW", "ONMODEL_COMFYUI_TIMEOUT", "ONMODEL_FLUX_TIMEOUT"),
        *("ONMODEL_FLUX_POLL_SECONDS", "ONMODEL_FLUX_MAX_RETRIES", "ONMODEL_GEMINI_TIMEOUT"),
        *("ONMODEL_GEMINI_MAX_RETRIES", "ONMODEL_OPENAI_TIMEOUT", "ONMODEL_OPENAI_MAX_RETRIES"),
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def studio(isolated_home: Path) -> Iterator[Studio]:
    with Studio.open(isolated_home) as opened:
        yield opened
