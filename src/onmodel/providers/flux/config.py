"""Every environment variable the flux provider reads, read and checked in one place.

Read when a request starts (not at import), so a test or a shell that changes a variable sees
it on the next shot; a bad value is one ``config`` error naming the variable, before anything
is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onmodel.providers.base import ProviderError
from onmodel.providers.config import count_setting, seconds_setting
from onmodel.settings import setting

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
    def from_environment(cls) -> FluxSettings:
        """The settings in force; a malformed one is a ``config`` error naming it, and no key
        an ``auth`` error (:meth:`FluxProvider.preflight` says both before a shot is
        recorded)."""
        url = setting(URL_ENV) or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise ProviderError(
                f"{URL_ENV}={url!r} is not an http(s) address (default {DEFAULT_URL})",
                kind="config",
            )
        timeout = seconds_setting(TIMEOUT_ENV, DEFAULT_TIMEOUT)
        poll_seconds = seconds_setting(POLL_ENV, DEFAULT_POLL_SECONDS)
        retries = count_setting(RETRIES_ENV, DEFAULT_RETRIES, most=10)
        key = setting(KEY_ENV)
        if not key:
            raise ProviderError(f"no FLUX API key: set {KEY_ENV}", kind="auth")
        return cls(key, url.rstrip("/"), timeout, poll_seconds, retries)
