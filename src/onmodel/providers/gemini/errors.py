"""Turns what the google-genai SDK raises, and answers that carry no picture, into one
:class:`ProviderError` with a one-line message and the ``kind`` the studio records.

The SDK raises ``errors.ClientError`` (4xx) and ``errors.ServerError`` (5xx), both
``errors.APIError`` with the HTTP ``code``, the API's ``status`` (``INVALID_ARGUMENT``,
``PERMISSION_DENIED``, ``RESOURCE_EXHAUSTED``...) and the error body as ``details``; transport
failures arrive as httpx2 exceptions. A refused picture is not an error at all: it is a 200
answer whose ``prompt_feedback.block_reason`` or candidate ``finish_reason`` says why, and it
has been paid for, so its usage travels with the error.

No message quotes what the server said about a key, and every text shown is scrubbed of
anything shaped like a Google API key (``AIza...``) or the key in use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from onmodel.providers.base import ProviderError
from onmodel.settings import setting

__all__ = [
    "SAFETY_REASONS",
    "blocked_error",
    "map_error",
    "no_image_error",
    "retry_delay",
    "scrub",
]

SAFETY_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
"""``FinishReason`` values (google-genai 3.6.1) that mean a filter stopped the picture; a
prompt with any ``prompt_feedback.block_reason`` was stopped by one too. ``OTHER``,
``IMAGE_OTHER`` and ``NO_IMAGE`` are not safety: the model simply drew nothing."""

_KEYISH = re.compile(r"AIza[0-9A-Za-z_\-]{10,}")
_KEY_WORDING = re.compile(r"api[ _-]?key", re.IGNORECASE)
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)s\s*$")
_MAX_DETAIL = 300


def scrub(text: str) -> str:
    """Blank out anything shaped like a Google API key, and the key in use whatever its shape."""
    cleaned = _KEYISH.sub("[redacted]", text)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        key = setting(name)
        if len(key) >= 4:
            cleaned = cleaned.replace(key, "[redacted]")
    return cleaned


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 1] + "…"


def _error_body(details: object) -> dict[str, Any]:
    if isinstance(details, Mapping):
        inner = details.get("error", details)
        if isinstance(inner, Mapping):
            return dict(inner)
    return {}


def _detail_items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = body.get("details")
    return [item for item in found if isinstance(item, Mapping)] if isinstance(found, list) else []


def retry_delay(details: object, headers: Mapping[str, str] | None = None) -> float | None:
    """Seconds the API asked to wait: the error's ``RetryInfo.retryDelay`` ("12s"), else the
    ``Retry-After`` header (seconds); None when it said nothing."""
    for item in _detail_items(_error_body(details)):
        if str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    raw = (headers or {}).get("retry-after", "")
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _is_daily_quota(body: Mapping[str, Any]) -> bool:
    """A 429 whose quota is per day (``QuotaFailure`` violations with a ``...PerDay...``
    quota id): retrying in seconds cannot help, so it is ``quota``, which stops a batch, not
    ``rate_limit``. The message cannot tell: Google words per-minute limits "You exceeded your
    current quota" too."""
    return any(
        isinstance(violation, Mapping) and "PerDay" in str(violation.get("quotaId", ""))
        for item in _detail_items(body)
        for violation in item.get("violations") or ()
    )


def _is_key_problem(body: Mapping[str, Any]) -> bool:
    reasons = {str(item.get("reason", "")) for item in _detail_items(body)}
    return "API_KEY_INVALID" in reasons or bool(
        _KEY_WORDING.search(str(body.get("message", "")))
        and "not valid" in str(body.get("message", "")).lower()
    )


def map_error(exc: BaseException) -> ProviderError:
    """One :class:`ProviderError` for anything the SDK (or its transport) raised."""
    from google.genai import errors

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, errors.APIError):
        return _map_api_error(exc)
    import httpx2

    if isinstance(exc, httpx2.TimeoutException):
        from onmodel.providers.gemini.client import TIMEOUT_ENV, timeout_seconds

        return ProviderError(
            f"Gemini did not answer within {timeout_seconds():g} s (the request timed out; "
            f"set {TIMEOUT_ENV} to wait longer)",
            kind="timeout",
        )
    if isinstance(exc, httpx2.TransportError):
        return ProviderError(
            f"could not reach Gemini{_address(exc)}: "
            f"{scrub(_one_line(str(exc) or type(exc).__name__))}",
            kind="connection",
        )
    text = scrub(_one_line(str(exc)))
    if "api key" in text.lower() or "api_key" in text.lower():
        return ProviderError(
            "no Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY)", kind="auth"
        )
    return ProviderError(f"{type(exc).__name__}: {text}", kind="unexpected")


def _address(exc: BaseException) -> str:
    """ " at http://host:port/path" of the failed request (a wrong GOOGLE_GEMINI_BASE_URL
    shows), without its query; empty when the exception carries no request."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # httpx2 raises RuntimeError when there is none
        return ""
    return f" at {url.copy_with(query=None)}"


def _map_api_error(exc: Any) -> ProviderError:
    body = _error_body(exc.details)
    code = int(exc.code) if isinstance(exc.code, int) else 0
    status = str(exc.status or body.get("status") or "")
    detail = scrub(_one_line(str(exc.message or body.get("message") or "")))
    label = f"HTTP {code}{', ' + status if status else ''}"
    if (
        code in (401, 403)
        or status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
        or (code == 400 and _is_key_problem(body))
    ):
        # The API's text may quote the key; none of it is repeated.
        return ProviderError(
            f"Gemini rejected the API key or refused access ({label}): check GEMINI_API_KEY "
            "(or GOOGLE_API_KEY)",
            kind="auth",
            code=status or None,
        )
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        headers = getattr(exc.response, "headers", None)
        wait = retry_delay(exc.details, {k.lower(): v for k, v in dict(headers or {}).items()})
        if _is_daily_quota(body):
            return ProviderError(
                f"Gemini says the quota is used up ({label}): {detail or 'quota exceeded'}; "
                "wait for it to reset or raise it in Google AI Studio",
                kind="quota",
                code=status or None,
                retry_after=wait,
            )
        after = f"; retry after {wait:g} s" if wait is not None else ""
        return ProviderError(
            f"Gemini rate limit hit ({label}){after}: {detail or 'slow down'}",
            kind="rate_limit",
            code=status or None,
            retry_after=wait,
        )
    if code >= 500:
        return ProviderError(
            f"Gemini server error ({label}): {detail or 'no details'}",
            kind="server",
            code=status or None,
        )
    return ProviderError(
        f"Gemini rejected the request ({label}): {detail or 'no details'}",
        kind="invalid_request",
        code=status or None,
    )


def blocked_error(
    reason: str,
    categories: list[str],
    usage: dict[str, Any] | None,
    response_id: str | None,
    *,
    prompt: bool,
) -> ProviderError:
    """A picture a safety filter stopped: ``moderation``, with the categories the answer
    rated as blocked (or probable) and the usage already paid for."""
    what = "the prompt" if prompt else "the image"
    named = f"{reason}: {', '.join(categories)}" if categories else reason
    return ProviderError(
        f"Gemini blocked {what} under its safety rules ({named})",
        kind="moderation",
        code=reason,
        categories=categories,
        usage=usage,
        response_id=response_id,
    )


def no_image_error(
    why: str, text: str, usage: dict[str, Any] | None, response_id: str | None
) -> ProviderError:
    """An answer without a picture for another reason (the model only wrote): ``bad_response``."""
    said = f"; it said: {scrub(_one_line(text))[:200]}" if text.strip() else ""
    return ProviderError(
        f"Gemini answered without an image ({why}){said}",
        kind="bad_response",
        code=why,
        usage=usage,
        response_id=response_id,
    )
