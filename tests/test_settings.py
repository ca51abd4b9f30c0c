"""The environment is read in one place, into one typed snapshot."""

from __future__ import annotations

from pathlib import Path

from onmodel.settings import Settings


def test_every_variable_lands_in_its_field() -> None:
    settings = Settings.from_environment(
        {
            "ONMODEL_HOME": " /tmp/x ",
            "ONMODEL_DATABASE_URL": "postgresql:///onmodel",
            "ONMODEL_DEBUG": "1",
            "ONMODEL_OPENAI_TIMEOUT": "30",
            "ONMODEL_OPENAI_MAX_RETRIES": "0",
            "ONMODEL_RESPONSES_MODEL": "gpt-6-luna",
            "OPENAI_API_KEY": "sk-test",
        }
    )
    assert (settings.home, settings.database_url, settings.debug) == (
        "/tmp/x",
        "postgresql:///onmodel",
        True,
    )
    assert (settings.openai_timeout, settings.openai_max_retries) == ("30", "0")
    assert settings.responses_model == "gpt-6-luna" and settings.has_openai_key
    assert not Settings.from_environment({}).has_openai_key


def test_nothing_else_reads_the_environment() -> None:
    source = Path(__file__).resolve().parents[1] / "src" / "onmodel"
    readers = [
        str(path.relative_to(source))
        for path in source.rglob("*.py")
        if "os.environ" in path.read_text(encoding="utf-8") or "getenv(" in path.read_text()
    ]
    assert readers == ["settings.py"]
