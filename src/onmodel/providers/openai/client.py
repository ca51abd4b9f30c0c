"""The one place onmodel builds an OpenAI client, so both OpenAI providers share its settings.

Both providers go through here so that timeouts and retries are the same whichever route a shot
takes, and so that a batch's threads share one client (and its connection pool) instead of each
paying for its own.

Retries are the SDK's own (it honours ``Retry-After``/``retry-after-ms`` and sends the same
idempotency key on every attempt), never a loop of ours. The one thing the SDK gets wrong for us
is ``insufficient_quota``: it arrives as HTTP 429 like an ordinary rate limit, and the SDK retries
every 429, so an empty account would be asked three more times, with back-off, before the user
hears "add credit". :class:`QuotaAwareOpenAI` overrides the SDK's retry decision
(``_should_retry``, the single hook ``SyncAPIClient._request`` consults for every 4xx/5xx) to
say no for that case only; every other answer goes to the SDK's own rules unchanged.

The API key is never read here: the SDK reads ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL``)
itself.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

import openai

from onmodel.providers.config import count_setting, seconds_setting
from onmodel.providers.openai.errors import is_quota_body, map_error
from onmodel.settings import Settings

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_RETRIES_ENV",
    "TIMEOUT_ENV",
    "QuotaAwareOpenAI",
    "make_client",
    "max_retries",
    "timeout_seconds",
    "warm_up_client",
]

TIMEOUT_ENV = "ONMODEL_OPENAI_TIMEOUT"
MAX_RETRIES_ENV = "ONMODEL_OPENAI_MAX_RETRIES"

DEFAULT_TIMEOUT = 180.0
"""Seconds to wait for an answer. A high-quality, large GPT image can take well over a minute,
and the SDK's 600 s default would leave a user staring at a hung terminal for ten minutes."""

CONNECT_TIMEOUT = 10.0
"""Seconds to open the connection: failing to connect is a network problem, never image work."""

DEFAULT_MAX_RETRIES = 3
"""One more than the SDK default: image endpoints are rate limited per minute, so one extra,
``Retry-After``-paced attempt often turns a failed shot into a slow one."""


class QuotaAwareOpenAI(openai.OpenAI):
    """``openai.OpenAI`` that does not retry an ``insufficient_quota`` 429.

    Why a subclass: the SDK decides retries in ``_should_retry(response)`` and offers no public
    switch per error code. Retrying an empty account cannot succeed, only delays the message
    (up to ~8 s of back-off, or the full ``Retry-After``). ``with_options()``/``copy()`` build
    ``self.__class__``, so derived clients keep the behaviour. If a future SDK renamed the hook
    the override would go quiet, which ``tests/test_openai_providers.py`` catches by asserting
    that a quota error is attempted exactly once.
    """

    def _should_retry(self, response: httpx2.Response) -> bool:
        if response.status_code == 429 and is_quota_body(response):
            return False
        return super()._should_retry(response)


def timeout_seconds(settings: Settings | None = None) -> float:
    """The read timeout in force: ``ONMODEL_OPENAI_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`."""
    raw = (settings or Settings.from_environment()).openai_timeout
    return seconds_setting(TIMEOUT_ENV, DEFAULT_TIMEOUT, raw)


def max_retries(settings: Settings | None = None) -> int:
    """Retries after the first attempt: ``ONMODEL_OPENAI_MAX_RETRIES`` or 3."""
    raw = (settings or Settings.from_environment()).openai_max_retries
    return count_setting(MAX_RETRIES_ENV, DEFAULT_MAX_RETRIES, raw)


def make_client(settings: Settings | None = None) -> openai.OpenAI:
    """A client configured from the environment, shared by every call with the same settings.

    The SDK reads ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID`` and
    ``OPENAI_PROJECT_ID`` itself. One client is reused (it is thread-safe and keeps its
    connection pool) because building one loads an SSL context, about 20 ms a shot in a batch.
    Raises :class:`ProviderError` (kind ``config`` or ``auth``) when the settings are unusable,
    so the studio records the failure like any other.
    """
    chosen = settings or Settings.from_environment()
    try:
        # the lock makes a batch's first requests, all starting at once, share one new client
        # instead of each building (and paying for) its own
        with _CLIENT_LOCK:
            return _client_for(timeout_seconds(chosen), max_retries(chosen), chosen.openai_client)
    except openai.OpenAIError as exc:
        raise map_error(exc) from exc


_CLIENT_LOCK = threading.Lock()


def warm_up_client(
    client: openai.OpenAI | None, resource: str, settings: Settings | None = None
) -> None:
    """Have ``client`` (or the shared one, built now) ready for its first ``resource`` call.

    Besides building the client and loading the resource's module, this asks for the client's
    headers: the SDK describes the platform in them, once, by running ``uname``; left to the
    first requests, each of a batch's threads would run it. The image decoders come last: the
    first answers need them, the first requests do not.
    """
    from onmodel.imagefile import load_decoders

    ready = client or make_client(settings)
    ready.default_headers  # noqa: B018 - computed (and cached) on first use
    getattr(ready, resource)  # a cached property that loads the resource's module
    load_decoders()


@lru_cache(maxsize=4)
def _client_for(
    seconds: float, retries: int, _environment: tuple[str | None, ...]
) -> openai.OpenAI:
    timeout = openai.Timeout(seconds, connect=min(CONNECT_TIMEOUT, seconds))
    return QuotaAwareOpenAI(timeout=timeout, max_retries=retries)
