"""One careful HTTP caller for providers that speak REST without an SDK (FLUX, ComfyUI).

The OpenAI and Gemini SDKs retry and map errors themselves; a REST provider gets the same
behaviour here, once: bounded retries with back-off for the answers worth retrying (429,
500/502/503/504, a dropped connection), the wait a 429 asks for (``Retry-After``, seconds or a
date) honoured up to a cap, and every failure turned into one :class:`ProviderError` whose
``kind`` the studio records as it records OpenAI's (``rate_limit``, ``server``, ``auth``,
``invalid_request``, ``timeout``, ``connection``, ``bad_response``). No message repeats a key
or a header: only the service's name, the status and the service's own short explanation.

httpx2 (which the openai SDK already brings) sends the requests; ``transport`` is the test
seam, as in httpx.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx2

from onmodel.providers.base import ProviderError

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_DETAIL = 300


@dataclass
class HttpService:
    """A REST service: where it is, how long to wait, how often to try again."""

    name: str  # "FLUX (Black Forest Labs)", "ComfyUI": what messages call it
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    connect_timeout: float = 10.0
    retries: int = 3
    backoff: float = 1.0  # seconds before the first retry, doubled each time (with jitter)
    max_wait: float = 60.0  # the longest Retry-After honoured; a longer one fails now
    transport: httpx2.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    timeout_env: str = ""  # the variable that sets ``timeout``, named when it runs out
    _client: httpx2.Client | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> httpx2.Client:
        if self._client is None:
            self._client = httpx2.Client(
                base_url=self.base_url,
                headers=dict(self.headers),
                timeout=httpx2.Timeout(
                    self.timeout, connect=min(self.connect_timeout, self.timeout)
                ),
                transport=self.transport,
                follow_redirects=True,
            )
        return self._client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx2.Response:
        """Send, retrying what is worth retrying; a success (2xx) is returned, anything else
        raises :class:`ProviderError`. ``url`` is a path under ``base_url`` or a whole
        address (a polling or download URL the service handed out)."""
        attempt = 0
        idempotent = method in ("GET", "HEAD")
        while True:
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx2.TransportError as exc:
                # a submission (POST) is tried again only when it never left: once sent, the
                # service may have made (and billed) it, and a second would be a second task
                sent = not isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout)
                if attempt < self.retries and (idempotent or not sent):
                    attempt += 1
                    self.sleep(self._backoff(attempt))
                    continue
                raise self._transport_error(exc, url, sent=sent) from exc
            if response.is_success:
                return response
            wait = retry_after(response)
            if response.status_code in RETRIED_STATUSES and attempt < self.retries:
                pause = self._backoff(attempt + 1) if wait is None else wait
                if pause <= self.max_wait:
                    attempt += 1
                    self.sleep(pause)
                    continue
            raise self.status_error(response, attempt, wait)

    def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """:meth:`request`, and its body as a JSON object (anything else: ``bad_response``)."""
        response = self.request(method, url, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ProviderError(
                f"{self.name} answered {method} {_path(url)} with something that is not a "
                "JSON object",
                kind="bad_response",
            )
        return data

    def status_error(
        self, response: httpx2.Response, attempts: int = 0, wait: float | None = None
    ) -> ProviderError:
        """The one-line error for an unsuccessful answer."""
        status = response.status_code
        detail = error_detail(response)
        tried = f" after {attempts} {'retry' if attempts == 1 else 'retries'}" if attempts else ""
        said = f": {detail}" if detail else ""
        if status in (401, 403):
            return ProviderError(
                f"{self.name} refused the request (HTTP {status}){said}: check the API key",
                kind="auth",
                code=str(status),
            )
        if status == 402:
            return ProviderError(
                f"{self.name} says the account is out of credit (HTTP 402){said}",
                kind="quota",
                code="402",
            )
        if status == 429:
            asked = f"; it asks to wait {wait:g} s" if wait else ""
            return ProviderError(
                f"{self.name} rate limit hit{tried} (HTTP 429){said}{asked}",
                kind="rate_limit",
                code="429",
                retry_after=wait,
            )
        if status >= 500:
            return ProviderError(
                f"{self.name} server error (HTTP {status}){tried}{said}",
                kind="server",
                code=str(status),
            )
        return ProviderError(
            f"{self.name} rejected the request (HTTP {status}){said or ': no details'}",
            kind="invalid_request",
            code=str(status),
        )

    def _transport_error(
        self, exc: httpx2.TransportError, url: str, *, sent: bool
    ) -> ProviderError:
        """A request that got no answer: never sent (``connection``: it cost nothing), timed
        out, or cut off after it was sent (``connection_lost``: it may have been made)."""
        if isinstance(exc, httpx2.TimeoutException) and sent:
            longer = f"; set {self.timeout_env} to wait longer" if self.timeout_env else ""
            return ProviderError(
                f"{self.name} did not answer within {self.timeout:g} s (the request timed "
                f"out{longer})",
                kind="timeout",
            )
        where = _address(url, self.base_url)
        detail = _one_line(str(exc)) or type(exc).__name__
        if sent:
            return ProviderError(
                f"the connection to {self.name} at {where} dropped after the request was sent "
                f"({detail}): it may have been made, and billed, anyway",
                kind="connection_lost",
            )
        return ProviderError(f"could not reach {self.name} at {where}: {detail}", kind="connection")

    def _backoff(self, attempt: int) -> float:
        base = self.backoff * (2 ** (attempt - 1))
        return float(min(self.max_wait, base * (0.75 + random.random() / 2)))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def retry_after(response: httpx2.Response) -> float | None:
    """The wait a response asks for: ``retry-after-ms``, ``Retry-After`` in seconds or as an
    HTTP date; None when it says nothing usable."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_detail(response: httpx2.Response) -> str:
    """The service's own short explanation: a JSON ``detail``/``message``/``error`` (nested
    one level), else the start of a text body; never more than one line."""
    try:
        data: Any = response.json()
    except ValueError:
        data = None
    text = _message_in(data) if data is not None else response.text
    return _one_line(text or "")


def _message_in(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return "; ".join(_message_in(item) for item in data[:3] if item)
    if isinstance(data, dict):
        for key in ("detail", "message", "error", "msg", "details"):
            if data.get(key):
                found = _message_in(data[key])
                if found:
                    return found
        if "type" in data and isinstance(data["type"], str):
            return data["type"]
        return json.dumps(data)[:MAX_DETAIL]
    return str(data)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_DETAIL else flat[: MAX_DETAIL - 1] + "…"


def _path(url: str) -> str:
    return httpx2.URL(url).path or url


def public_address(url: str) -> str:
    """An address as it may be shown and recorded: no query (a signed URL's signature), no
    fragment, no credentials."""
    return str(httpx2.URL(url).copy_with(query=None, fragment=None, userinfo=b""))


def _address(url: str, base: str) -> str:
    """Where a request went, without a query (a polling URL's signature) or credentials."""
    full = (
        httpx2.URL(base).join(url)
        if not url.startswith(("http://", "https://"))
        else httpx2.URL(url)
    )
    return public_address(str(full))
