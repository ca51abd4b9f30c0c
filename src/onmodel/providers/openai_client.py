"""The one place onmodel builds an OpenAI client and turns SDK errors into :class:`ProviderError`.

Both OpenAI providers go through here so that timeouts, retries and error wording are the same
whichever route a shot takes.

Retries are the SDK's own (it honours ``Retry-After``/``retry-after-ms`` and sends the same
idempotency key on every attempt), never a loop of ours. The one thing the SDK gets wrong for us
is ``insufficient_quota``: it arrives as HTTP 429 like an ordinary rate limit, and the SDK retries
every 429, so an empty account would be asked three more times, with back-off, before the user
hears "add credit". :class:`QuotaAwareOpenAI` overrides the SDK's retry decision
(``_should_retry``, the single hook ``SyncAPIClient._request`` consults for every 4xx/5xx) to
say no for that case only; every other answer goes to the SDK's own rules unchanged.

The API key is never read here: the SDK reads ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL``)
itself, and no message built here quotes what the server said about a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import openai

from onmodel.providers.base import InputImage, ProviderError
from onmodel.settings import Settings

if TYPE_CHECKING:
    import httpx2

    from onmodel.capabilities import ModelCapability

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_RETRIES_ENV",
    "TIMEOUT_ENV",
    "QuotaAwareOpenAI",
    "decode_image",
    "image_options",
    "input_fidelity_for",
    "make_client",
    "map_error",
    "max_retries",
    "moderation_categories",
    "read_input",
    "sent_images",
    "timeout_seconds",
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

_QUOTA = "insufficient_quota"
_MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
_MODERATION_WORDING = re.compile(r"safety system|content policy", re.IGNORECASE)
_KEYISH = re.compile(r"\b(?:sk|sess)-[^\s'\",;)]+")
_MAX_DETAIL = 300


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
        if response.status_code == 429 and _is_quota_body(response):
            return False
        return super()._should_retry(response)


def _is_quota_body(response: httpx2.Response) -> bool:
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


def _env_float(name: str, raw: str, default: float) -> float:
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ProviderError(
            f"{name}={raw!r} is not a number of seconds above 0 (e.g. {DEFAULT_TIMEOUT:g})",
            kind="config",
        )
    return value


def _env_int(name: str, raw: str, default: int) -> int:
    if not raw:
        return default
    if not raw.isdigit():
        raise ProviderError(
            f"{name}={raw!r} is not a whole number of retries (0 or more, default {default})",
            kind="config",
        )
    return int(raw)


def timeout_seconds(settings: Settings | None = None) -> float:
    """The read timeout in force: ``ONMODEL_OPENAI_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`."""
    raw = (settings or Settings.from_environment()).openai_timeout
    return _env_float(TIMEOUT_ENV, raw, DEFAULT_TIMEOUT)


def max_retries(settings: Settings | None = None) -> int:
    """Retries after the first attempt: ``ONMODEL_OPENAI_MAX_RETRIES`` or 3."""
    raw = (settings or Settings.from_environment()).openai_max_retries
    return _env_int(MAX_RETRIES_ENV, raw, DEFAULT_MAX_RETRIES)


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
        return ProviderError(
            f"OpenAI did not answer within {_seconds_text()} (the request timed out; "
            f"set {TIMEOUT_ENV} to wait longer)",
            kind="timeout",
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = _one_line(str(exc.__cause__ or exc.message))
        where = f"{exc.request.url.scheme}://{exc.request.url.host}"
        return ProviderError(f"could not reach OpenAI at {where}: {cause}", kind="connection")
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


def _code_text(code: str | None) -> str:
    return f", {code}" if code else ""


def _seconds_text() -> str:
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


# --- request helpers shared by the OpenAI providers --------------------------------------------


def read_input(item: InputImage) -> bytes:
    """The bytes of one input image, checked against the digest the studio recorded.

    The studio verified the blob when it planned the shot; checking again here is what lets
    ``sent_params`` promise that the image with this sha256 is exactly what was uploaded.
    """
    try:
        data = item.path.read_bytes()
    except OSError as exc:
        raise ProviderError(
            f"cannot read the {item.role} image {item.path}: {exc.strerror or exc}",
            kind="invalid_request",
        ) from exc
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise ProviderError(
            f"the {item.role} image {item.path} changed since it was recorded "
            f"(expected sha256 {item.sha256[:12]}…)",
            kind="invalid_request",
        )
    return data


def sent_images(inputs: Sequence[InputImage]) -> list[dict[str, str]]:
    """How ``sent_params`` records uploaded images: role and digest, in upload order."""
    return [{"role": item.role, "sha256": item.sha256} for item in inputs]


def decode_image(b64: str | None, *, source: str) -> tuple[bytes, str]:
    """Decode a base64 image from an answer and make sure it is a picture; return bytes, format.

    Checked here rather than left to the studio so that a broken payload is a provider failure
    (kind ``bad_response``) with the provider's wording, even for callers outside the studio.
    """
    from onmodel.errors import InvalidImageError
    from onmodel.imagefile import inspect_bytes

    if not b64:
        raise ProviderError(f"{source} contained no image data", kind="bad_response")
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProviderError(f"{source} is not valid base64 ({exc})", kind="bad_response") from exc
    try:
        info = inspect_bytes(data, source=source)
    except InvalidImageError as exc:
        # inspect_bytes' own text names an in-memory buffer; say what the user can act on.
        raise ProviderError(
            f"{source} is not a readable image ({len(data):,} bytes that PNG, JPEG or WebP "
            "decoders refuse)",
            kind="bad_response",
        ) from exc
    return data, info.format


def input_fidelity_for(cap: ModelCapability | None, params: Mapping[str, Any]) -> str | None:
    """``input_fidelity`` to send with input images, or None to leave it out.

    An explicit value in ``params`` is honoured when the model takes it; otherwise ``high`` is
    chosen whenever the model offers it, because matching the reference face is the whole
    point of onmodel (the API's default is ``low``). Models without the parameter (gpt-image-2
    and later: "omit this parameter") never get it.
    """
    allowed = cap.input_fidelity if cap is not None else ()
    asked = params.get("input_fidelity")
    if asked is not None:
        return asked if isinstance(asked, str) and asked in allowed else None
    return "high" if "high" in allowed else None


def image_options(params: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The image options in ``params`` that are set, in a stable order, for the given route."""
    return {name: params[name] for name in names if params.get(name) is not None}
