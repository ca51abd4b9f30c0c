"""Turns whatever the OpenAI SDK raises into one :class:`ProviderError` with a one-line message.

Both OpenAI providers go through here so that error wording, and the ``kind`` the studio stores
and callers branch on, are the same whichever route a shot takes. The quota check lives here too
because the client's retry decision must recognise ``insufficient_quota`` exactly as this
mapping does.

No message built here quotes what the server said about a key: texts are scrubbed of anything
shaped like one before they are shown.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import openai

from onmodel.providers.base import ProviderError

if TYPE_CHECKING:
    import httpx2

__all__ = ["is_quota_body", "map_error", "moderation_categories"]

_QUOTA = "insufficient_quota"
_MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
_MODERATION_WORDING = re.compile(r"safety system|content policy", re.IGNORECASE)
_KEYISH = re.compile(r"\b(?:sk|sess)-[^\s'\",;)]+")
_MAX_DETAIL = 300


def is_quota_body(response: httpx2.Response) -> bool:
    """True when a 429 body says ``insufficient_quota`` (as ``code`` or as ``type``)."""
    try:
        response.read()  # a no-op for ordinary requests; streamed error bodies need it
        data = json.loads(response.content)
    except Exception:  # an unreadable body is treated as an ordinary, retryable 429
        return False
    error = data.get("error", data) if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return False
    return _QUOTA in (error.get("code"), error.get("type"))


def map_error(exc: BaseException) -> ProviderError:
    """Turn anything the SDK raises into one :class:`ProviderError` with a one-line message.

    ``kind`` is what the studio stores and what callers branch on: ``quota``, ``rate_limit``,
    ``moderation`` (with ``categories``), ``invalid_request``, ``auth``, ``server``, ``timeout``,
    ``connection``, ``bad_response``, ``unexpected``. ``code`` keeps the API's own error code
    (for instance ``previous_response_not_found``) for finer decisions.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        # imported here, not at the top: client.py imports this module to map its own errors
        from onmodel.providers.openai.client import TIMEOUT_ENV

        return ProviderError(
            f"OpenAI did not answer within {_seconds_text()} (the request timed out; "
            f"set {TIMEOUT_ENV} to wait longer)",
            kind="timeout",
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = _one_line(str(exc.__cause__ or exc.message))
        return ProviderError(
            f"could not reach OpenAI at {_address(exc.request.url)}: {cause}", kind="connection"
        )
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(
            f"OpenAI answered with data onmodel could not read (HTTP {exc.status_code})",
            kind="bad_response",
        )
    if isinstance(exc, openai.APIStatusError):
        return _map_status_error(exc)
    if isinstance(exc, openai.OpenAIError):
        text = str(exc)
        if "OPENAI_API_KEY" in text or "api_key" in text:
            return ProviderError(
                "no OpenAI API key: set OPENAI_API_KEY, or use the preview or chatgpt provider",
                kind="auth",
            )
        return ProviderError(f"OpenAI client error: {_scrub(_one_line(text))}", kind="unexpected")
    return ProviderError(f"{type(exc).__name__}: {_scrub(_one_line(str(exc)))}", kind="unexpected")


def _map_status_error(exc: openai.APIStatusError) -> ProviderError:
    error = exc.body if isinstance(exc.body, dict) else {}
    code = exc.code or _str_or_none(error.get("code"))
    error_type = _str_or_none(error.get("type"))
    detail = _scrub(_one_line(_str_or_none(error.get("message")) or ""))
    status = exc.status_code
    tried = _attempts_text(exc)

    if isinstance(exc, openai.AuthenticationError):
        # The 401 text quotes part of the key ("Incorrect API key provided: sk-ab***wxyz"), so
        # none of it is repeated here.
        return ProviderError(
            f"OpenAI rejected the API key (HTTP 401{_code_text(code)}): check OPENAI_API_KEY",
            kind="auth",
            code=code,
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return ProviderError(
            f"OpenAI refused access (HTTP 403{_code_text(code)}): {detail or 'permission denied'}",
            kind="auth",
            code=code,
        )
    if status == 429:
        if _QUOTA in (code, error_type):
            return ProviderError(
                "OpenAI says the account is out of quota (insufficient_quota): add credit or "
                "raise the budget in the OpenAI billing settings",
                kind="quota",
                code=code or _QUOTA,
            )
        return ProviderError(
            f"OpenAI rate limit hit{tried} ({code or 'rate_limit'}): {detail or 'slow down'}",
            kind="rate_limit",
            code=code,
        )
    if status >= 500:
        return ProviderError(
            f"OpenAI server error (HTTP {status}){tried}: {detail or 'no details'}",
            kind="server",
            code=code,
        )
    if status == 400 and _is_moderation(code, detail):
        categories = _categories(error)
        label = code or "content_policy"
        if categories:
            label = f"{label}: {', '.join(categories)}"
        return ProviderError(
            f"OpenAI refused the prompt under its content policy ({label})",
            kind="moderation",
            code=code,
            categories=categories,
        )
    param = _str_or_none(error.get("param"))
    where = f", param {param}" if param else ""
    return ProviderError(
        f"OpenAI rejected the request (HTTP {status}{_code_text(code)}{where}): "
        f"{detail or 'no details'}",
        kind="invalid_request",
        code=code,
    )


def moderation_categories(error: object) -> list[str]:
    """Categories from an error's ``moderation_details`` (Images 400s, Responses tool calls)."""
    if not isinstance(error, dict):
        details = getattr(error, "moderation_details", None)
        found = getattr(details, "categories", None) if details is not None else None
        return [str(c) for c in found] if isinstance(found, list) else []
    return _categories(error)


def _categories(error: dict[str, Any]) -> list[str]:
    details = error.get("moderation_details")
    found = details.get("categories") if isinstance(details, dict) else None
    return [str(c) for c in found] if isinstance(found, list) else []


def _is_moderation(code: str | None, detail: str) -> bool:
    return code in _MODERATION_CODES or bool(_MODERATION_WORDING.search(detail))


def _attempts_text(exc: openai.APIStatusError) -> str:
    """Text such as " after 3 retries", from the SDK's ``x-stainless-retry-count`` header."""
    raw = exc.request.headers.get("x-stainless-retry-count", "0")
    retries = int(raw) if raw.isdigit() else 0
    if retries <= 0:
        return ""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}"


def _address(url: httpx2.URL) -> str:
    """The whole address the SDK used (scheme, host, port and path, so a wrong port or base
    path in ``OPENAI_BASE_URL`` shows), without a query or credentials."""
    return str(url.copy_with(query=None, fragment=None, userinfo=b""))


def _code_text(code: str | None) -> str:
    return f", {code}" if code else ""


def _seconds_text() -> str:
    from onmodel.providers.openai.client import timeout_seconds  # see map_error

    try:
        return f"{timeout_seconds():g} s"
    except ProviderError:
        return "the time limit"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _one_line(text: str) -> str:
    """Collapse whitespace and cut long server texts so the CLI prints one readable line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_DETAIL else flat[: _MAX_DETAIL - 1] + "…"


def _scrub(text: str) -> str:
    """Blank out anything shaped like an API or session key, masked or not, before it is shown."""
    return _KEYISH.sub("[redacted]", text)
