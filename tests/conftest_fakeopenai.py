"""The ``fake_openai`` pytest fixture: a FakeOpenAI server per test (and ``sdk_retry_waits``).

Kept out of ``conftest.py`` so the lead's conftest opts in with
``from conftest_fakeopenai import fake_openai  # noqa: F401``.  The fixture is
registered under the explicit name ``fake_openai`` so it can also be imported
under an alias (avoiding ruff's F811 when a test parameter has the same name).
"""

from __future__ import annotations

import logging
import re
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


class _RetryWaits(logging.Handler):
    """Collects the waits the openai SDK schedules before its retries, from its INFO log."""

    PATTERN = re.compile(r"Retrying request in ([0-9.]+) seconds")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.waits: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = self.PATTERN.match(record.getMessage())
        if found:
            self.waits.append(float(found.group(1)))


@pytest.fixture(name="sdk_retry_waits")
def sdk_retry_waits() -> Iterator[list[float]]:
    """The seconds the SDK decided to wait before each retry, in order, as it decided them.

    Checking the decision (Retry-After's value, or the SDK's own back-off) rather than the
    measured gap between requests keeps retry tests exact on a busy machine.
    """
    logger = logging.getLogger("openai._base_client")
    handler = _RetryWaits()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler.waits
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
