"""The ``fake_openai`` pytest fixture: a FakeOpenAI server per test.

Kept out of ``conftest.py`` so the lead's conftest opts in with
``from conftest_fakeopenai import fake_openai  # noqa: F401``.  The fixture is
registered under the explicit name ``fake_openai`` so it can also be imported
under an alias (avoiding ruff's F811 when a test parameter has the same name).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakeopenai import FakeOpenAI


@pytest.fixture(name="fake_openai")
def fake_openai() -> Iterator[FakeOpenAI]:
    """Start a fresh server on a free port; stop it and surface its own crashes.

    A crash inside the fake would otherwise show up as a confusing 500 in the
    code under test, so teardown fails loudly with the fake's traceback.
    """
    with FakeOpenAI() as server:
        yield server
        if server.errors:
            pytest.fail("FakeOpenAI crashed:\n" + "\n".join(server.errors))
