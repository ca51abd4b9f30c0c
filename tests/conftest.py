"""Every test gets its own data directory and no API key, so nothing leaks between tests
and nothing can reach a real service.

The store, batch and web tests run twice: against SQLite (``home/onmodel.db``, the default)
and against a throwaway PostgreSQL server (``tests/pgserver.py``), through
``ONMODEL_DATABASE_URL`` pointing at a fresh database of their own. Subprocess runs of the CLI
inherit that environment, so they use the same database. A test that checks SQLite itself (its
file, its query plans, its migrations from an old file) is marked ``sqlite_only`` with the
reason, and its PostgreSQL run is skipped with that reason instead of passing wrongly.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest_fakeopenai import fake_openai  # noqa: F401
from onmodel.studio import Studio
from pgserver import postgres_cluster, postgres_url  # noqa: F401

BACKENDS = ("sqlite", "postgresql")

BOTH_BACKENDS = {
    "test_store.py",
    "test_session_paging.py",
    "test_batch.py",
    "test_batch_cast.py",
    "test_batch_kill.py",
    "test_batch_retakes.py",
    "test_batch_run.py",
    "test_batch_server.py",
    "test_batch_support.py",
    "test_web.py",
    "test_web_curation.py",
    "test_web_fixtures.py",
    "test_web_hardening.py",
    "test_web_long.py",
    "test_costs.py",
    "test_curation.py",
    "test_lineage.py",
}
"""Modules whose every test runs on both databases (test ids end in ``[sqlite]`` or
``[postgresql]``); the others run on SQLite only."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sqlite_only(reason): checks SQLite itself; its PostgreSQL run is skipped with reason",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if Path(str(metafunc.definition.fspath)).name not in BOTH_BACKENDS:
        return
    params = []
    only = metafunc.definition.get_closest_marker("sqlite_only")
    for backend in BACKENDS:
        marks = []
        if backend == "postgresql" and only is not None:
            reason = only.args[0] if only.args else only.kwargs.get("reason", "SQLite only")
            marks.append(pytest.mark.skip(reason=f"SQLite only: {reason}"))
        params.append(pytest.param(backend, id=backend, marks=marks))
    metafunc.parametrize("database_backend", params, indirect=True)


@pytest.fixture(autouse=True)
def database_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` unless the test's module runs on both and this is its PostgreSQL run."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_backend: str,
    request: pytest.FixtureRequest,
) -> Path:
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
        # a studio's set-up in the developer's shell must not send tests to its bucket
        *("ONMODEL_BLOBS_URL", "ONMODEL_BLOBS_CACHE_MB", "ONMODEL_BATCH_LEASE"),
    ):
        monkeypatch.delenv(name, raising=False)
    if database_backend == "postgresql":
        monkeypatch.setenv("ONMODEL_DATABASE_URL", request.getfixturevalue("postgres_url"))
    return home


@pytest.fixture
def studio(isolated_home: Path) -> Iterator[Studio]:
    with Studio.open(isolated_home) as opened:
        yield opened
