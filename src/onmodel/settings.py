"""Every environment variable onmodel reads, read in one place.

A snapshot, taken when asked for, so a test (or an embedding program) that changes the
environment sees the change on its next call, and code elsewhere asks a typed object instead
of knowing variable names. Values are kept as given: each is checked where it is used, with
an error that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

OPENAI_CLIENT_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
)
"""The openai SDK's own settings: it reads them itself; onmodel only notices when they change."""


@dataclass(frozen=True)
class Settings:
    home: str = ""  # ONMODEL_HOME: the data folder (default: the platform's user data folder)
    database_url: str = ""  # ONMODEL_DATABASE_URL: records elsewhere than home/onmodel.db
    blobs_url: str = ""  # ONMODEL_BLOBS_URL: images elsewhere than home/blobs (s3://bucket/prefix)
    blobs_cache_mb: str = ""  # ONMODEL_BLOBS_CACHE_MB: cap on the local copies of remote images
    debug: bool = False  # ONMODEL_DEBUG: show tracebacks of unexpected errors
    openai_timeout: str = ""  # ONMODEL_OPENAI_TIMEOUT: seconds to wait for an answer
    openai_max_retries: str = ""  # ONMODEL_OPENAI_MAX_RETRIES: retries after the first attempt
    responses_model: str = ""  # ONMODEL_RESPONSES_MODEL: the mainline model on that route
    judge_model: str = ""  # ONMODEL_JUDGE_MODEL: the vision model the judge checker asks
    openai_client: tuple[str | None, ...] = (None,) * len(OPENAI_CLIENT_VARIABLES)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def text(name: str) -> str:
            return env.get(name, "").strip()

        return cls(
            home=text("ONMODEL_HOME"),
            database_url=text("ONMODEL_DATABASE_URL"),
            blobs_url=text("ONMODEL_BLOBS_URL"),
            blobs_cache_mb=text("ONMODEL_BLOBS_CACHE_MB"),
            debug=bool(text("ONMODEL_DEBUG")),
            openai_timeout=text("ONMODEL_OPENAI_TIMEOUT"),
            openai_max_retries=text("ONMODEL_OPENAI_MAX_RETRIES"),
            responses_model=text("ONMODEL_RESPONSES_MODEL"),
            judge_model=text("ONMODEL_JUDGE_MODEL"),
            openai_client=tuple(env.get(name) for name in OPENAI_CLIENT_VARIABLES),
        )

    @property
    def has_openai_key(self) -> bool:
        return bool(self.openai_client[0])


def setting(name: str) -> str:
    """The environment variable ``name``, stripped (empty when unset): for a variable onmodel
    does not know by name, such as a provider plugin's own time-out."""
    return os.environ.get(name, "").strip()


def is_set(name: str) -> bool:
    """Whether the environment variable ``name`` holds a value: for a variable onmodel does
    not know by name, such as the API key a provider plugin declares (``Provider.key_env``)."""
    return bool(setting(name))
