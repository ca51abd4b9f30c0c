"""Every environment variable the flux provider reads, read and checked in one place.

Read when a request starts (not at import), so a test or a shell that changes a variable sees
it on the next shot; a bad value is one ``config`` error naming the variable, before anything
is sent.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from onmodel.providers.base import ProviderError

KEY_ENV = "BFL_API_KEY"
URL_ENV = "ONMODEL_FLUX_URL"
TIMEOUT_ENV = "ONMODEL_FLUX_TIMEOUT"
POLL_ENV = "ONMODEL_FLUX_POLL_SECONDS"
RETRIES_ENV = "ONMODEL_FLUX_MAX_RETRIES"

DEFAULT_URL = "https://api.bfl.ai"
DEFAULT_TIMEOUT = 60.0
"""Seconds one HTTP call may take: submitting and polling answer at once; the download of a
4 MP PNG is the slowest."""
DEFAULT_POLL_SECONDS = 300.0
"""How long a task may stay Pending before the shot fails as a timeout: BFL's docs quote
seconds for [pro] and [max]; [flex] at 50 steps is slower, never minutes."""
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class FluxSettings:
    key: str = field(repr=False)  # never shown: a repr can end up in a log or a traceback
    url: str = DEFAULT_URL
    timeout: float = DEFAULT_TIMEOUT
    poll_seconds: float = DEFAULT_POLL_SECONDS
    retries: int = DEFAULT_RETRIES

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> FluxSettings:
        env = os.environ if environ is None else environ

        def text(name: str) -> str:
            return env.get(name, "").strip()

        url = text(URL_ENV) or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise ProviderError(
                f"{URL_ENV}={url!r} is not an http(s) address (default {DEFAULT_URL})",
                kind="config",
            )
        key = text(KEY_ENV)
        if not key:
            raise ProviderError(f"no FLUX API key: set {KEY_ENV}", kind="auth")
        return cls(
            key=key,
            url=url.rstrip("/"),
            timeout=_seconds(TIMEOUT_ENV, text(TIMEOUT_ENV), DEFAULT_TIMEOUT),
            poll_seconds=_seconds(POLL_ENV, text(POLL_ENV), DEFAULT_POLL_SECONDS),
            retries=_count(RETRIES_ENV, text(RETRIES_ENV), DEFAULT_RETRIES),
        )


def _seconds(name: str, raw: str, default: float) -> float:
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or math.isinf(value):
        raise ProviderError(
            f"{name}={raw!r} is not a number of seconds above 0 (default {default:g})",
            kind="config",
        )
    return value


def _count(name: str, raw: str, default: int) -> int:
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 10:
        raise ProviderError(
            f"{name}={raw!r} is not a whole number of retries from 0 to 10 (default {default})",
            kind="config",
        )
    return int(raw)
