"""The one place the gemini provider builds a google-genai client.

One client per settings, built on first use and shared by a batch's threads (the SDK client
is thread-safe and keeps its connection pool; building one loads an SSL context). The SDK
reads the key (``GEMINI_API_KEY``/``GOOGLE_API_KEY``) and the base URL
(``GOOGLE_GEMINI_BASE_URL``) itself; onmodel only notices when they change, so a test or an
embedding program that changes them gets a new client.

Retries are the SDK's own (``HttpRetryOptions``: bounded attempts on 408, 429 and 5xx with
exponential back-off), never a loop of ours. The SDK does not read ``RetryInfo.retryDelay``
between its attempts; when they run out, the delay the API asked for is reported
(``ProviderError.retry_after``), and a batch waits it out.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from onmodel.providers.config import count_setting, seconds_setting
from onmodel.settings import setting

if TYPE_CHECKING:
    from google import genai

__all__ = [
    "API_VERSION",
    "CLIENT_VARIABLES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_RETRIES_ENV",
    "RETRY_STATUS_CODES",
    "TIMEOUT_ENV",
    "make_client",
    "max_retries",
    "timeout_seconds",
]

TIMEOUT_ENV = "ONMODEL_GEMINI_TIMEOUT"
MAX_RETRIES_ENV = "ONMODEL_GEMINI_MAX_RETRIES"
CLIENT_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")
"""What the SDK reads itself; a change means a new client."""

API_VERSION = "v1beta"
"""The version Google's image-generation guide uses (image_config arrived there first)."""

DEFAULT_TIMEOUT = 180.0
"""Seconds to wait for an answer: a 4K picture from a thinking model can take a minute or
more, and the SDK by default waits without a limit."""

DEFAULT_MAX_RETRIES = 3
"""Retries after the first attempt: image models are rate limited per minute, so a few
paced attempts turn many failed shots into slow ones."""

RETRY_STATUS_CODES = (408, 429, 500, 502, 503, 504)

RETRY_INITIAL_DELAY = 2.0
"""Seconds before the first retry (doubling, with up to a second of jitter, to at most
:data:`RETRY_MAX_DELAY`); tests make these tiny."""
RETRY_MAX_DELAY = 30.0
RETRY_JITTER = 1.0


def timeout_seconds() -> float:
    """The read timeout in force: ``ONMODEL_GEMINI_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`."""
    return seconds_setting(TIMEOUT_ENV, DEFAULT_TIMEOUT)


def max_retries() -> int:
    """Retries after the first attempt: ``ONMODEL_GEMINI_MAX_RETRIES`` or 3."""
    return count_setting(MAX_RETRIES_ENV, DEFAULT_MAX_RETRIES)


def make_client() -> genai.Client:
    """The client for the current settings, built once (under a lock, so a batch's first
    shots, all starting at once, share it)."""
    with _LOCK:
        return _client_for(
            timeout_seconds(),
            max_retries(),
            (RETRY_INITIAL_DELAY, RETRY_MAX_DELAY, RETRY_JITTER),
            tuple(setting(name) for name in CLIENT_VARIABLES),
        )


_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _client_for(
    seconds: float,
    retries: int,
    delays: tuple[float, float, float],
    _environment: tuple[str, ...],
) -> genai.Client:
    from google import genai
    from google.genai import types

    initial, most, jitter = delays
    options = types.HttpOptions(
        api_version=API_VERSION,
        timeout=int(seconds * 1000),  # milliseconds
        retry_options=types.HttpRetryOptions(
            attempts=retries + 1,
            initial_delay=initial,
            max_delay=most,
            jitter=jitter,
            http_status_codes=list(RETRY_STATUS_CODES),
        ),
    )
    # The Gemini Developer API (an API key), never Vertex AI, even when the environment says
    # GOOGLE_GENAI_USE_VERTEXAI: onmodel's tables, prices and key checks are this API's.
    return genai.Client(vertexai=False, http_options=options)
