"""A local, OpenAI-compatible HTTP server for tests and benchmarks.

Why a real server: the ``openai`` 3.x SDK sends through HTTPX2 (``httpx2``), which
respx and other httpx mocks cannot intercept, and mocking the SDK itself would skip
exactly the parts worth testing (multipart encoding, retries, ``Retry-After``
handling, timeouts, error mapping).  So tests point the real client at this server
with ``base_url=server.base_url`` and everything goes over real HTTP on 127.0.0.1.

What it does:

* serves ``POST /v1/images/generations``, ``POST /v1/images/edits`` and
  ``POST /v1/responses`` with bodies shaped like the real API's (GPT image models:
  ``b64_json`` only, never ``url`` or ``revised_prompt``);
* returns real, tiny images (Pillow) whose colour is a hash of the prompt, so tests
  can tell outputs apart, sized as the requested size divided by ``image_scale``;
* records every request (headers, JSON or multipart fields and files, timestamps),
  counts requests in flight and the maximum seen at once;
* validates requests the way the real API does where that is cheap, answering 400
  and keeping the request in ``rejected`` so a test can assert that every request
  the code under test sent is one the real API accepts;
* injects scripted faults per endpoint (``fail_next``) and per-request latency (the time from
  receiving a request to answering it, its validation and image included);
* answers a Responses request that declares ``text.format`` ``json_schema`` (Structured
  Outputs) with JSON text: the next scripted answer (``answer_next``) or, by default, a
  minimal instance of the declared schema; the ``refusal``, ``incomplete`` and ``malformed``
  faults make it refuse, stop short or send text that is not JSON. A strict schema is checked
  as the real API checks it (every object closed, every property required).

Run standalone for benchmarks: ``python tests/fakeopenai.py --port 0 --latency 0.5``
prints the base URL on its first stdout line and serves until killed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import math
import re
import select
import signal
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, get_args

from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.formparser import FormDataParser
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

log = logging.getLogger("fakeopenai")

FaultKind = Literal[
    "rate_limit",
    "insufficient_quota",
    "server_error",
    "timeout",
    "moderation",
    "malformed",
    "auth",
    "refusal",
    "incomplete",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
RESPONSES = "/v1/responses"
ENDPOINTS: tuple[str, ...] = (GENERATIONS, EDITS, RESPONSES)
RECEIVED_AT = "fakeopenai.received_at"  # WSGI environ key: when the request line arrived

# Image models the SDK (openai 3.54) documents as usable.  gpt-image-1 and the
# DALL-E models are listed by the SDK only as deprecated/shut down.
IMAGE_MODELS: frozenset[str] = frozenset(
    {
        "gpt-image-1-mini",
        "gpt-image-1.5",
        "gpt-image-2",
        "gpt-image-2-2026-04-21",
        "gpt-image-2.5-sunburst",
        "gpt-image-2.5-sunburst-2026-09-08",
        "gpt-image-2.5-flare",
        "gpt-image-2.5-flare-2026-09-08",
        "gpt-image-2.6-sunburst",
        "gpt-image-2.6-flare",
        "chatgpt-image-latest",
    }
)
RETIRED_IMAGE_MODELS: Mapping[str, str] = {
    "gpt-image-1": "GPT Image 1 was shut down on October 23, 2026.",
    "dall-e-2": "This model was retired on May 12, 2026.",
    "dall-e-3": "This model was retired on May 12, 2026.",
}
# The SDK documents this as the image_generation tool's default model.
DEFAULT_TOOL_IMAGE_MODEL = "gpt-image-2.6-sunburst"
STANDARD_SIZES: frozenset[str] = frozenset({"1024x1024", "1536x1024", "1024x1536"})
MAX_EDGE = 3840
MAX_PIXELS = 3840 * 2160
MAX_INPUT_IMAGES = 16
MAX_PROMPT_CHARS = 32000
MAX_IMAGE_BYTES = 50 * 1024 * 1024
INPUT_IMAGE_MIME_TYPES: frozenset[str] = frozenset({"image/png", "image/jpeg", "image/webp"})
# Output formats the fake can really encode; gif/svg need preview access upstream.
ENCODABLE_FORMATS: Mapping[str, str] = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}

GENERATION_PARAMS: frozenset[str] = frozenset(
    {
        "prompt",
        "background",
        "complexity",
        "frame_count",
        "frame_duration_ms",
        "model",
        "moderation",
        "n",
        "output_compression",
        "output_format",
        "partial_images",
        "quality",
        "safety_identifier",
        "size",
        "stream",
        "svg",
        "user",
    }
)
EDIT_PARAMS: frozenset[str] = frozenset(
    (GENERATION_PARAMS - {"moderation"}) | {"image", "image[]", "input_fidelity", "markup", "mask"}
)
# Parameters the SDK still offers but GPT image models reject.
LEGACY_IMAGE_PARAMS: frozenset[str] = frozenset({"response_format", "style"})

# Approximate output image tokens for a 1024x1024 image, per quality.
OUTPUT_IMAGE_TOKENS: Mapping[str, int] = {
    "low": 272,
    "medium": 1056,
    "high": 4160,
    "xhigh": 8320,
    "max": 16640,
}
INPUT_IMAGE_TOKENS = 323

MALFORMED_PAYLOAD = base64.b64encode(b"this is not an image").decode()
MALFORMED_JSON = '{"answer": "cut off here'
DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request."
SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_TIMEOUT_DELAY = 30.0


class ApiError(Exception):
    """An error answer in OpenAI's ``{"error": {...}}`` shape.

    Raised by validation and fault injection so one code path renders every
    error body and its headers the same way.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        """The JSON body the real API would send for this error."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        error.update(self.extra)
        return {"error": error}


def _invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 ``invalid_request_error``, the real API's answer to a bad request."""
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class RecordedFile:
    """One multipart file part, kept byte for byte so tests can compare uploads."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    """Everything the server saw of one request and what it answered.

    ``received_at``/``finished_at`` are ``time.monotonic()`` values (system-wide on
    Linux, so comparable across processes); ``received_wall`` is ``time.time()``.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    form: dict[str, list[str]]
    files: list[RecordedFile]
    received_at: float
    received_wall: float
    finished_at: float | None = None
    status: int | None = None
    outcome: str = "pending"
    rejection: str | None = None
    response_json: Any = None
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def retry_count(self) -> int | None:
        """The SDK's ``x-stainless-retry-count`` header: 0 first try, then 1, 2..."""
        value = self.headers.get("x-stainless-retry-count")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def fields(self) -> dict[str, str]:
        """Multipart fields with their last value, for terse assertions."""
        return {name: values[-1] for name, values in self.form.items() if values}

    @property
    def images(self) -> list[RecordedFile]:
        """The uploaded ``image``/``image[]`` parts, in the order they were sent."""
        return [f for f in self.files if f.field in ("image", "image[]")]

    @property
    def input_image_urls(self) -> list[str]:
        """A Responses request's ``input_image`` URLs (data URLs), in the order they were sent."""
        items = self.json.get("input") if isinstance(self.json, dict) else None
        urls: list[str] = []
        for item in items if isinstance(items, list) else []:
            content = item.get("content") if isinstance(item, dict) else None
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict) and part.get("type") == "input_image":
                    urls.append(str(part.get("image_url")))
        return urls

    @property
    def text_format(self) -> dict[str, Any] | None:
        """A Responses request's ``text.format`` (for Structured Outputs, its JSON schema)."""
        text = self.json.get("text") if isinstance(self.json, dict) else None
        found = text.get("format") if isinstance(text, dict) else None
        return found if isinstance(found, dict) else None

    def summary(self) -> dict[str, Any]:
        """A JSON-safe summary without bodies, for the standalone control API."""
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "outcome": self.outcome,
            "rejection": self.rejection,
            "retry_count": self.retry_count,
            "received_at": self.received_at,
            "received_wall": self.received_wall,
            "finished_at": self.finished_at,
        }


@dataclass
class Fault:
    """A scripted answer waiting in an endpoint's queue.

    ``remaining`` of None means the fault never runs out (until ``clear_faults``).
    """

    kind: str
    remaining: int | None = 1
    retry_after: float | str | None = None
    retry_after_ms: int | None = None
    delay: float | None = None
    status: int | None = None
    message: str | None = None
    categories: tuple[str, ...] = ("sexual",)
    moderation_stage: str = "input"


@dataclass
class _Context:
    """Per-request scratch data passed from the WSGI layer to the handlers."""

    record: RecordedRequest
    sock: socket.socket | None
    params: dict[str, Any] = field(default_factory=dict)


class _QuietHandler(WSGIRequestHandler):
    """Request handler that logs to ``logging`` at debug level instead of stderr.

    Test output would otherwise fill with access lines and broken-pipe noise from
    clients that gave up on a ``timeout`` fault.
    """

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("%s %s", type, message % args if args else message)

    def parse_request(self) -> bool:
        # The request line has just arrived: the request counts as received from here, so
        # parsing its headers is part of the latency, as it is for a real API.
        self.received_at = time.monotonic()
        return bool(super().parse_request())

    def make_environ(self) -> dict[str, Any]:
        environ = dict(super().make_environ())
        environ[RECEIVED_AT] = self.received_at
        return environ


def _peer_closed(sock: socket.socket) -> bool:
    """True when the client has hung up, so a deliberate stall can end early."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def _parse_size(size: str) -> tuple[int, int] | None:
    """``"1536x1024"`` -> (1536, 1024); None when not ``WIDTHxHEIGHT``."""
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def _flexible_sizes(model: str) -> bool:
    """gpt-image-2 and later accept arbitrary ``WIDTHxHEIGHT`` within limits."""
    return model.startswith("gpt-image-2")


def _supports_xhigh(model: str) -> bool:
    """``xhigh``/``max`` quality exists only on the 2.5 (and, leniently, 2.6) models."""
    return model.startswith(("gpt-image-2.5", "gpt-image-2.6"))


def _as_int(value: Any, param: str) -> int:
    """Multipart sends numbers as strings; JSON as numbers. Accept both."""
    if isinstance(value, bool):
        raise _invalid(f"Invalid type for '{param}': expected an integer.", param)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise _invalid(
        f"Invalid type for '{param}': expected an integer, but got {value!r}.",
        param,
        "invalid_type",
    )


def _truthy(value: Any) -> bool:
    """``stream`` arrives as JSON bool or multipart ``"true"``/``"false"``."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _new_id(prefix: str) -> str:
    """IDs shaped like the real API's (``resp_…``, ``ig_…``, ``msg_…``)."""
    return f"{prefix}_{uuid.uuid4().hex}{uuid.uuid4().hex[:16]}"


class FakeOpenAI:
    """A threaded OpenAI-compatible server on 127.0.0.1 for the real ``openai`` SDK.

    Use as a context manager (or ``start()``/``stop()``); point the client at
    ``base_url``.  All public state is safe to read from the test thread while
    requests are in flight.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        api_key: str | None = None,
        image_scale: int = 16,
    ) -> None:
        """Configure; nothing listens until ``start()``.

        ``api_key`` set means only that bearer token is accepted (401 otherwise);
        None accepts any non-empty token, as tests normally use ``"sk-test"``.
        ``image_scale`` divides the requested size to keep returned images tiny.
        """
        self.host = host
        self.port = port
        self.latency = latency
        self.api_key = api_key
        self.image_scale = max(1, image_scale)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, deque[Fault]] = {}
        self._responses: dict[str, dict[str, Any]] = {}
        self._items: set[str] = set()
        self._answers: deque[str] = deque()
        self._in_flight = 0
        self._max_in_flight = 0
        self.errors: list[str] = []
        self._handlers: dict[str, Callable[[_Context], Response]] = {
            GENERATIONS: self._handle_generation,
            EDITS: self._handle_edit,
            RESPONSES: self._handle_responses,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOpenAI:
        """Bind a free port and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = make_server(
            self.host,
            self.port,
            self._wsgi,
            threaded=True,
            request_handler=_QuietHandler,
        )
        self.port = self._server.port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"fakeopenai:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop quickly: stalled handlers (latency, ``timeout`` faults) wake up now."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Root URL without the ``/v1`` prefix (control endpoints live at ``/_fake``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``openai.OpenAI(base_url=...)``."""
        return f"{self.url}/v1"

    # ------------------------------------------------------------------ state

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every API request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def rejected(self) -> list[RecordedRequest]:
        """Requests the real API would have refused (validation 400s, 401s, 404s)."""
        with self._lock:
            return [r for r in self._requests if r.outcome == "rejected"]

    @property
    def in_flight(self) -> int:
        """Requests currently being handled."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Highest number of requests handled at the same time since the last reset."""
        with self._lock:
            return self._max_in_flight

    @property
    def issued_response_ids(self) -> set[str]:
        """Stored ``resp_…`` ids that a later ``previous_response_id`` may name."""
        with self._lock:
            return set(self._responses)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Requests for one endpoint (``"images/edits"`` or ``"/v1/images/edits"``)."""
        wanted = self._normalize_path(path)
        return [r for r in self.requests if r.path == wanted]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` requests have arrived; for concurrency tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return True
            time.sleep(0.01)
        return len(self.requests) >= count

    def assert_no_rejections(self) -> None:
        """Fail with the reasons if any request would have been refused upstream."""
        rejected = self.rejected
        if rejected:
            reasons = "\n".join(f"{r.path}: {r.rejection}" for r in rejected)
            raise AssertionError(f"{len(rejected)} request(s) rejected:\n{reasons}")

    def reset(self) -> None:
        """Forget requests, faults, counters and stored responses; keep serving."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._responses.clear()
            self._items.clear()
            self._answers.clear()
            self._max_in_flight = self._in_flight
            self.errors.clear()

    def expire_response(self, response_id: str) -> None:
        """Make a stored response unknown, as if it had expired upstream."""
        with self._lock:
            stored = self._responses.pop(response_id, None)
            if stored is not None:
                self._items.difference_update(stored["item_ids"])

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        path: str,
        kind: FaultKind,
        times: int | None = 1,
        *,
        retry_after: float | str | Literal["default"] | None = "default",
        retry_after_ms: int | None = None,
        delay: float | None = None,
        status: int | None = None,
        message: str | None = None,
        categories: Sequence[str] = ("sexual",),
        moderation_stage: str = "input",
    ) -> None:
        """Queue ``times`` scripted answers for ``path`` (None = until cleared).

        Faults are consumed in order by requests that pass validation; invalid
        requests are rejected with a 400 and leave the queue alone.  ``path`` may be
        ``"*"`` for a queue shared by every endpoint, used after the endpoint's own.

        ``retry_after`` becomes the ``Retry-After`` header (seconds).  By default
        only ``rate_limit`` sends one (0.05 s, to keep tests fast); pass a value to
        add it to any kind, or None to omit it.  The SDK ignores ``Retry-After: 0``
        and falls back to its own ~0.5 s backoff, so keep it small but positive.
        ``delay`` is how long a ``timeout`` fault stalls (default: the client's
        ``x-stainless-read-timeout`` + 1 s, ended early if the client hangs up).
        ``status`` overrides the status of ``server_error`` (e.g. 502, 503).
        On a Structured Outputs request, ``refusal`` answers with a refusal part (``message``
        its text), ``incomplete`` stops halfway (``max_output_tokens``) and ``malformed``
        sends text that is not JSON; each still reports the usage, as the real API bills it.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for an endless fault)")
        key = "*" if path == "*" else self._normalize_path(path)
        if retry_after == "default":
            retry_after = 0.05 if kind == "rate_limit" else None
        fault = Fault(
            kind=kind,
            remaining=times,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            delay=delay,
            status=status,
            message=message,
            categories=tuple(categories),
            moderation_stage=moderation_stage,
        )
        with self._lock:
            self._faults.setdefault(key, deque()).append(fault)

    def answer_next(self, answer: Any, times: int = 1) -> None:
        """Queue the JSON text the next ``times`` Structured Outputs answers carry.

        A string is sent verbatim (so a test can send JSON that does not match the schema);
        anything else is sent as ``json.dumps(answer)``.  Without a queued answer the server
        answers with a minimal instance of the request's schema.
        """
        text = answer if isinstance(answer, str) else json.dumps(answer)
        with self._lock:
            self._answers.extend([text] * times)

    def clear_faults(self, path: str | None = None) -> None:
        """Drop queued faults for one endpoint, or all of them."""
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                key = "*" if path == "*" else self._normalize_path(path)
                self._faults.pop(key, None)

    def pending_faults(self, path: str) -> int:
        """How many queued faults remain for ``path`` (endless ones count as 1)."""
        key = "*" if path == "*" else self._normalize_path(path)
        with self._lock:
            return len(self._faults.get(key, ()))

    def _take_fault(self, path: str) -> Fault | None:
        """Pop the next fault for ``path`` (or the ``*`` queue), honouring ``times``."""
        with self._lock:
            for key in (path, "*"):
                queue = self._faults.get(key)
                if not queue:
                    continue
                fault = queue[0]
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        queue.popleft()
                return fault
        return None

    @staticmethod
    def _normalize_path(path: str) -> str:
        """Accept ``images/edits``, ``/images/edits`` and ``/v1/images/edits``."""
        path = "/" + path.strip("/")
        return path if path.startswith("/v1/") else "/v1" + path

    # ------------------------------------------------------------------ images

    @staticmethod
    def color_for(prompt: str, index: int = 0) -> tuple[int, int, int]:
        """The RGB colour of image ``index`` for ``prompt``: a hash, so it varies."""
        digest = hashlib.sha256(f"{prompt}\x00{index}".encode()).digest()
        return digest[0], digest[1], digest[2]

    def image_bytes(
        self,
        prompt: str,
        index: int = 0,
        size: str = "1024x1024",
        output_format: str = "png",
        transparent: bool = False,
    ) -> bytes:
        """Encode the image the server returns for these inputs.

        A solid colour from ``color_for``; with ``transparent`` the top-left quadrant
        is fully transparent so tests can see the alpha channel survived.
        """
        parsed = _parse_size(size) or (1024, 1024)
        width = max(1, parsed[0] // self.image_scale)
        height = max(1, parsed[1] // self.image_scale)
        rgb = self.color_for(prompt, index)
        fmt = ENCODABLE_FORMATS.get(output_format, "PNG")
        if transparent and fmt != "JPEG":
            image = Image.new("RGBA", (width, height), (*rgb, 255))
            image.paste((0, 0, 0, 0), (0, 0, max(1, width // 2), max(1, height // 2)))
        else:
            image = Image.new("RGB", (width, height), rgb)
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        return buffer.getvalue()

    # ------------------------------------------------------------------ WSGI

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """Entry point: record, count in-flight, stall if asked, dispatch."""
        request = Request(environ)
        if request.path.startswith("/_fake/"):
            return self._control(request)(environ, start_response)
        record = self._record(request)
        sock = environ.get("werkzeug.socket")
        context = _Context(record=record, sock=sock if isinstance(sock, socket.socket) else None)
        with self._lock:
            self._requests.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        answer_at = record.received_at + self.latency
        try:
            response = self._dispatch(context)
            # The latency is the time to answer, the server's own work included, as an API's
            # is: a request takes ``latency`` seconds however long validating it took here.
            wait = answer_at - time.monotonic()
            if wait > 0:
                self._sleep(wait, context.sock)
        except Exception:  # a bug in the fake must not look like an API error
            text = traceback.format_exc()
            log.error("FakeOpenAI crashed handling %s:\n%s", record.path, text)
            with self._lock:
                self.errors.append(text)
            record.outcome = "crash"
            response = self._json(500, ApiError(500, "FakeOpenAI crashed").body())
        finally:
            with self._lock:
                self._in_flight -= 1
        record.status = response.status_code
        record.response_headers = {k.lower(): v for k, v in response.headers.items()}
        record.finished_at = time.monotonic()
        return response(environ, start_response)

    def _record(self, request: Request) -> RecordedRequest:
        """Read the whole body once and keep it raw plus parsed."""
        now = time.monotonic()
        received_at = request.environ.get(RECEIVED_AT, now)
        received_wall = time.time() - (now - received_at)
        body = request.get_data(cache=True)
        parsed_json: Any = None
        form: dict[str, list[str]] = {}
        files: list[RecordedFile] = []
        if request.mimetype == "application/json" and body:
            try:
                parsed_json = json.loads(body)
            except ValueError:
                parsed_json = None
        elif request.mimetype == "multipart/form-data":
            parser = FormDataParser(max_form_memory_size=None, max_form_parts=100_000)
            _, form_data, file_data = parser.parse(
                io.BytesIO(body), request.mimetype, len(body), request.mimetype_params
            )
            form = {key: form_data.getlist(key) for key in form_data}
            files = self._files(file_data)
        return RecordedRequest(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed_json,
            form=form,
            files=files,
            received_at=received_at,
            received_wall=received_wall,
        )

    @staticmethod
    def _files(file_data: MultiDict[str, FileStorage]) -> list[RecordedFile]:
        """Multipart files in order (per field name, as werkzeug groups them)."""
        return [
            RecordedFile(
                field=name,
                filename=storage.filename,
                content_type=storage.mimetype or None,
                data=storage.read(),
            )
            for name, storage in file_data.items(multi=True)
        ]

    def _sleep(self, seconds: float, sock: socket.socket | None) -> bool:
        """Sleep in slices; stop early on shutdown or client hang-up.

        Returns True if the full time elapsed.  This is what lets ``stop()`` finish
        promptly while a ``timeout`` fault is stalling a handler thread.
        """
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if self._stopping.wait(min(0.05, remaining)):
                return False
            if sock is not None and _peer_closed(sock):
                return False

    def _dispatch(self, ctx: _Context) -> Response:
        """Route, authenticate, validate, then apply a fault or succeed."""
        record = ctx.record
        handler = self._handlers.get(record.path)
        if handler is None or record.method != "POST":
            return self._reject(
                ctx,
                ApiError(
                    404,
                    f"Invalid URL ({record.method} {record.path})",
                    param=None,
                    code=None,
                ),
            )
        auth = record.headers.get("authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        if not token or (self.api_key is not None and token != self.api_key):
            return self._reject(ctx, self._auth_error(token))
        try:
            return handler(ctx)
        except ApiError as error:
            return self._reject(ctx, error)

    def _reject(self, ctx: _Context, error: ApiError) -> Response:
        """Answer an error the real API would give for this request and record it."""
        ctx.record.outcome = "rejected"
        ctx.record.rejection = error.message
        return self._error_response(ctx, error)

    def _error_response(self, ctx: _Context, error: ApiError) -> Response:
        """Render ``error`` and remember the body on the record."""
        body = error.body()
        ctx.record.response_json = body
        return self._json(error.status, body, error.headers)

    @staticmethod
    def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON response with the headers the real API always sends."""
        response = Response(json.dumps(body), status=status, content_type="application/json")
        response.headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
        response.headers["openai-version"] = "2020-10-01"
        response.headers["openai-processing-ms"] = "1"
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def _auth_error(self, token: str) -> ApiError:
        """The real 401 for a missing or wrong key."""
        if not token:
            return ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in "
                "an Authorization header using Bearer auth.",
                param=None,
                code=None,
            )
        shown = token[:3] + "*" * max(0, len(token) - 7) + token[-4:]
        return ApiError(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def _apply_fault(self, ctx: _Context, model: str) -> tuple[Fault | None, Response | None]:
        """Consume the next fault; return an error response for the HTTP-level ones.

        ``timeout`` stalls here and then lets the normal success path answer;
        ``moderation``/``malformed`` are returned for the endpoint to render.
        """
        fault = self._take_fault(ctx.record.path)
        if fault is None:
            return None, None
        ctx.record.outcome = fault.kind
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = self._format_retry_after(fault.retry_after)
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        if fault.kind == "rate_limit":
            headers.update(
                {
                    "x-ratelimit-limit-requests": "5",
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": "12s",
                }
            )
            error = ApiError(
                429,
                fault.message
                or f"Rate limit reached for {model} in organization org-fake on "
                "images per minute (IPM): Limit 5, Used 5, Requested 1. Please try "
                "again in 12s. Visit https://platform.openai.com/account/rate-limits "
                "to learn more.",
                type="requests",
                code="rate_limit_exceeded",
                headers=headers,
            )
            return fault, self._error_response(ctx, error)
        if fault.kind == "insufficient_quota":
            error = ApiError(
                429,
                fault.message
                or "You exceeded your current quota, please check your plan and "
                "billing details. For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                type="insufficient_quota",
                code="insufficient_quota",
                headers=headers,
            )
            return fault, self._error_response(ctx, error)
        if fault.kind == "server_error":
            error = ApiError(
                fault.status or 500,
                fault.message
                or "The server had an error while processing your request. Sorry about that!",
                type="server_error",
                headers=headers,
            )
            return fault, self._error_response(ctx, error)
        if fault.kind == "auth":
            error = self._auth_error(ctx.record.headers.get("authorization", "x" * 12)[7:])
            error.headers.update(headers)
            if fault.message:
                error.message = fault.message
            return fault, self._error_response(ctx, error)
        if fault.kind == "timeout":
            delay = fault.delay
            if delay is None:
                try:
                    delay = float(ctx.record.headers["x-stainless-read-timeout"]) + 1.0
                except (KeyError, ValueError):
                    delay = DEFAULT_TIMEOUT_DELAY
            self._sleep(delay, ctx.sock)
            return fault, None
        return fault, None

    @staticmethod
    def _format_retry_after(value: float | str) -> str:
        """Integers as ``"2"`` (like the real API), fractions as ``"0.05"``."""
        if isinstance(value, str):
            return value
        return str(int(value)) if float(value).is_integer() else repr(float(value))

    @staticmethod
    def _moderation_error_fields(fault: Fault) -> dict[str, Any]:
        """``moderation_details`` as the SDK models it on image_generation_call errors."""
        return {
            "moderation_details": {
                "categories": list(fault.categories),
                "moderation_stage": fault.moderation_stage,
            }
        }

    @staticmethod
    def _moderation_message(fault: Fault) -> str:
        """The safety-system wording the images API uses for blocked requests."""
        return fault.message or (
            "Your request was rejected by the safety system. Your request may contain "
            "content that is not allowed by our content policy. If you believe this "
            "is an error, contact us at help.openai.com and include the request ID."
        )

    # ------------------------------------------------------------------ validation

    def _validate_image_model(self, model: Any, param: str = "model") -> str:
        """Known GPT image model, not a retired one."""
        if model is None or model == "":
            raise _invalid(
                "Missing required parameter: 'model'. Specify a GPT image model.",
                param,
                "missing_required_parameter",
            )
        if not isinstance(model, str):
            raise _invalid(f"Invalid type for '{param}': expected a string.", param)
        if model in RETIRED_IMAGE_MODELS:
            raise _invalid(
                f"The model '{model}' is no longer available. "
                f"{RETIRED_IMAGE_MODELS[model]} Use a GPT image model instead.",
                param,
                "model_not_found",
            )
        if model not in IMAGE_MODELS:
            supported = ", ".join(f"'{m}'" for m in sorted(IMAGE_MODELS))
            raise _invalid(
                f"Invalid value: '{model}'. Supported values are: {supported}.",
                param,
                "invalid_value",
            )
        return model

    def _validate_image_options(
        self, params: Mapping[str, Any], model: str, prefix: str = ""
    ) -> dict[str, Any]:
        """Checks shared by both images endpoints and the image_generation tool.

        Returns the resolved options the success body reports back.
        """
        quality = params.get("quality")
        allowed_quality = {"low", "medium", "high", "auto"}
        if _supports_xhigh(model):
            allowed_quality |= {"xhigh", "max"}
        if quality is not None and quality not in allowed_quality:
            raise _invalid(
                f"Invalid value: '{quality}'. Supported values are: "
                + ", ".join(f"'{q}'" for q in sorted(allowed_quality))
                + ".",
                prefix + "quality",
                "invalid_value",
            )
        size = params.get("size")
        if size is not None:
            self._validate_size(size, model, prefix + "size")
        output_format = params.get("output_format") or "png"
        if output_format not in ENCODABLE_FORMATS:
            if output_format in ("gif", "svg"):
                raise _invalid(
                    f"FakeOpenAI does not implement output_format={output_format!r}.",
                    prefix + "output_format",
                    "unsupported_by_fake",
                )
            raise _invalid(
                f"Invalid value: '{output_format}'. Supported values are: 'png', "
                "'jpeg', 'webp', 'gif' and 'svg'.",
                prefix + "output_format",
                "invalid_value",
            )
        background = params.get("background")
        if background is not None and background not in ("transparent", "opaque", "auto"):
            raise _invalid(
                f"Invalid value: '{background}'. Supported values are: 'transparent', "
                "'opaque' and 'auto'.",
                prefix + "background",
                "invalid_value",
            )
        if background == "transparent" and output_format not in ("png", "webp"):
            raise _invalid(
                "Transparent background requires output_format 'png' or 'webp'.",
                prefix + "background",
                "invalid_value",
            )
        compression = params.get("output_compression")
        if compression is not None:
            level = _as_int(compression, prefix + "output_compression")
            if not 0 <= level <= 100:
                raise _invalid(
                    "output_compression must be between 0 and 100.",
                    prefix + "output_compression",
                    "invalid_value",
                )
            if output_format == "png" and level != 100:
                raise _invalid(
                    "Compression less than 100 is not supported for PNG output format.",
                    prefix + "output_compression",
                    "invalid_value",
                )
        fidelity = params.get("input_fidelity")
        if fidelity is not None:
            if model.startswith("gpt-image-2"):
                raise _invalid(
                    f"input_fidelity is not supported for model '{model}'; omit it.",
                    prefix + "input_fidelity",
                    "unsupported_parameter",
                )
            if fidelity not in ("high", "low"):
                raise _invalid(
                    f"Invalid value: '{fidelity}'. Supported values are: 'high' and 'low'.",
                    prefix + "input_fidelity",
                    "invalid_value",
                )
            if model == "gpt-image-1-mini" and fidelity != "low":
                raise _invalid(
                    "gpt-image-1-mini supports only input_fidelity 'low'.",
                    prefix + "input_fidelity",
                    "invalid_value",
                )
        if quality in (None, "auto"):
            quality = "high"
        if size in (None, "auto"):
            size = "1024x1024"
        if background in (None, "auto"):
            background = "opaque"
        return {
            "quality": quality,
            "size": size,
            "output_format": output_format,
            "background": background,
        }

    @staticmethod
    def _validate_size(size: Any, model: str, param: str) -> None:
        """Standard sizes for older models; 16-multiples within limits for gpt-image-2*."""
        if size == "auto":
            return
        parsed = _parse_size(size) if isinstance(size, str) else None
        if not _flexible_sizes(model):
            if size not in STANDARD_SIZES:
                raise _invalid(
                    f"Invalid value: '{size}'. Supported values are: '1024x1024', "
                    "'1024x1536', '1536x1024', and 'auto'.",
                    param,
                    "invalid_value",
                )
            return
        if parsed is None:
            raise _invalid(
                f"Invalid size '{size}'. Use 'auto' or WIDTHxHEIGHT.", param, "invalid_value"
            )
        width, height = parsed
        problems = []
        if width % 16 or height % 16:
            problems.append("width and height must be divisible by 16")
        if width == 0 or height == 0 or not (1 / 3 <= width / height <= 3):
            problems.append("aspect ratio must be between 1:3 and 3:1")
        if max(width, height) > MAX_EDGE or width * height > MAX_PIXELS:
            problems.append("maximum supported resolution is 3840x2160")
        if problems:
            raise _invalid(
                f"Invalid size '{size}': " + "; ".join(problems) + ".",
                param,
                "invalid_value",
            )

    def _validate_common_image_params(
        self, params: Mapping[str, Any], allowed: frozenset[str]
    ) -> tuple[str, str, int]:
        """Unknown/legacy params, prompt, model, n, stream for both images endpoints."""
        for name in params:
            if name in LEGACY_IMAGE_PARAMS:
                raise _invalid(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
            if name not in allowed and not name.startswith("svg["):
                raise _invalid(f"Unknown parameter: '{name}'.", name, "unknown_parameter")
        prompt = params.get("prompt")
        if prompt is None or prompt == "":
            raise _invalid(
                "Missing required parameter: 'prompt'.",
                "prompt",
                "missing_required_parameter",
            )
        if not isinstance(prompt, str):
            raise _invalid("Invalid type for 'prompt': expected a string.", "prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise _invalid(
                f"Invalid 'prompt': string too long. Expected a string with maximum "
                f"length {MAX_PROMPT_CHARS}, but got a string with length "
                f"{len(prompt)} instead.",
                "prompt",
                "string_above_max_length",
            )
        model = self._validate_image_model(params.get("model"))
        n = 1 if params.get("n") is None else _as_int(params["n"], "n")
        if not 1 <= n <= 10:
            raise _invalid(
                f"Invalid 'n': integer {n} is outside 1..10.", "n", "integer_out_of_range"
            )
        if _truthy(params.get("stream")) or params.get("partial_images") not in (None, 0, "0"):
            raise _invalid(
                "FakeOpenAI does not implement streaming.", "stream", "unsupported_by_fake"
            )
        moderation = params.get("moderation")
        if moderation is not None and moderation not in ("low", "auto"):
            raise _invalid(
                f"Invalid value: '{moderation}'. Supported values are: 'low' and 'auto'.",
                "moderation",
                "invalid_value",
            )
        return prompt, model, n

    @staticmethod
    def _check_image_file(upload: RecordedFile, label: str) -> Image.Image:
        """Supported MIME type and really an image, as the real API insists."""
        if upload.content_type not in INPUT_IMAGE_MIME_TYPES:
            raise _invalid(
                f"Invalid file '{label}': unsupported mimetype "
                f"('{upload.content_type}'). Supported file formats are "
                "'image/jpeg', 'image/png', and 'image/webp'.",
                label,
                "unsupported_file",
            )
        if len(upload.data) > MAX_IMAGE_BYTES:
            raise _invalid(f"Invalid file '{label}': larger than 50MB.", label, "file_too_large")
        try:
            image = Image.open(io.BytesIO(upload.data))
            image.load()
        except Exception as exc:  # Pillow raises many types for bad data
            raise _invalid(
                f"Invalid image file for '{label}': {type(exc).__name__}. Please check "
                "your image file.",
                label,
                "invalid_image_file",
            ) from None
        return image

    # ------------------------------------------------------------------ images API

    def _usage(
        self, prompt: str, options: Mapping[str, Any], n: int, input_images: int
    ) -> dict[str, Any]:
        """Plausible token usage so cost accounting code has numbers to add up."""
        text_tokens = max(1, math.ceil(len(prompt) / 4))
        image_tokens = input_images * INPUT_IMAGE_TOKENS
        width, height = _parse_size(options["size"]) or (1024, 1024)
        per_image = OUTPUT_IMAGE_TOKENS.get(options["quality"], 4160)
        output_tokens = n * max(1, round(per_image * width * height / (1024 * 1024)))
        return {
            "input_tokens": text_tokens + image_tokens,
            "input_tokens_details": {
                "text_tokens": text_tokens,
                "image_tokens": image_tokens,
            },
            "output_tokens": output_tokens,
            "output_tokens_details": {"image_tokens": output_tokens, "text_tokens": 0},
            "total_tokens": text_tokens + image_tokens + output_tokens,
        }

    def _images_success(
        self,
        ctx: _Context,
        prompt: str,
        model: str,
        n: int,
        options: Mapping[str, Any],
        input_images: int,
    ) -> Response:
        """Fault (if queued) or the images body: b64_json only, no url/revised_prompt."""
        fault, response = self._apply_fault(ctx, model)
        if response is not None:
            return response
        if fault is not None and fault.kind == "moderation":
            error = ApiError(
                400,
                self._moderation_message(fault),
                type="image_generation_user_error",
                code="moderation_blocked",
                extra=self._moderation_error_fields(fault),
            )
            return self._error_response(ctx, error)
        transparent = options["background"] == "transparent"
        data = []
        for index in range(n):
            if fault is not None and fault.kind == "malformed":
                b64 = MALFORMED_PAYLOAD
            else:
                raw = self.image_bytes(
                    prompt, index, options["size"], options["output_format"], transparent
                )
                b64 = base64.b64encode(raw).decode()
            data.append({"b64_json": b64})
        body = {
            "created": int(time.time()),
            "data": data,
            "background": options["background"],
            "output_format": options["output_format"],
            "quality": options["quality"],
            "size": options["size"],
            "usage": self._usage(prompt, options, n, input_images),
        }
        if ctx.record.outcome == "pending":
            ctx.record.outcome = "ok"
        ctx.record.response_json = body
        return self._json(200, body)

    def _handle_generation(self, ctx: _Context) -> Response:
        """``POST /v1/images/generations`` (JSON)."""
        params = ctx.record.json
        if not isinstance(params, dict):
            raise _invalid("We could not parse the JSON body of your request.")
        params = {k: v for k, v in params.items() if v is not None}
        prompt, model, n = self._validate_common_image_params(params, GENERATION_PARAMS)
        options = self._validate_image_options(params, model)
        return self._images_success(ctx, prompt, model, n, options, input_images=0)

    def _handle_edit(self, ctx: _Context) -> Response:
        """``POST /v1/images/edits`` (multipart with ``image`` or ``image[]`` parts)."""
        record = ctx.record
        if not record.headers.get("content-type", "").startswith("multipart/form-data"):
            raise _invalid("Invalid Content-Type header (expected multipart/form-data).", None)
        params: dict[str, Any] = record.fields
        for upload in record.files:
            params.setdefault(upload.field, upload)
        prompt, model, n = self._validate_common_image_params(params, EDIT_PARAMS)
        for name in ("image", "image[]", "mask", "markup"):
            if name in record.form:
                raise _invalid(
                    f"Invalid type for '{name}': expected a file, but got a string.",
                    name,
                    "invalid_type",
                )
        images = record.images
        if not images:
            raise _invalid(
                "Missing required parameter: 'image'.", "image", "missing_required_parameter"
            )
        if {f.field for f in images} == {"image", "image[]"}:
            raise _invalid("Send images as either 'image' or 'image[]', not both.", "image")
        if len(images) > MAX_INPUT_IMAGES:
            raise _invalid(
                f"Too many images: {len(images)}. You can provide up to {MAX_INPUT_IMAGES} images.",
                "image",
                "array_above_max_length",
            )
        decoded = [
            self._check_image_file(upload, f"image[{i}]" if upload.field == "image[]" else "image")
            for i, upload in enumerate(images)
        ]
        masks = [f for f in record.files if f.field == "mask"]
        markups = [f for f in record.files if f.field == "markup"]
        if masks and markups:
            raise _invalid("'markup' cannot be combined with 'mask'.", "markup")
        if masks:
            mask = self._check_image_file(masks[0], "mask")
            if masks[0].content_type != "image/png":
                raise _invalid("Invalid file 'mask': must be a PNG.", "mask")
            if "A" not in mask.getbands():
                raise _invalid(
                    "Invalid mask image format - mask image missing alpha channel",
                    "mask",
                    "invalid_image_format",
                )
            if mask.size != decoded[0].size:
                raise _invalid(
                    "Invalid mask: it must have the same dimensions as the first image.",
                    "mask",
                )
        if markups:
            self._check_image_file(markups[0], "markup")
        options = self._validate_image_options(params, model)
        return self._images_success(ctx, prompt, model, n, options, len(images))

    # ------------------------------------------------------------------ responses API

    def _validate_input_items(self, items: Sequence[Any]) -> tuple[str, int]:
        """Reject what the real API rejects in ``input``; return prompt text and image count.

        A bare ``{"type": "image_generation_call", "id": "ig_…"}`` is refused (the
        item needs its ``result``/``status``), as are references to unknown items.
        """
        texts: list[str] = []
        images = 0
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _invalid(f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]")
            kind = item.get("type")
            if kind is None and "role" not in item and "id" in item:
                kind = "item_reference"
            if kind == "image_generation_call":
                for required in ("id", "status", "result"):
                    if required not in item:
                        raise _invalid(
                            f"Missing required parameter: 'input[{i}].{required}'.",
                            f"input[{i}].{required}",
                            "missing_required_parameter",
                        )
                images += 1
            elif kind == "item_reference":
                with self._lock:
                    known = item.get("id") in self._items
                if not known:
                    raise _invalid(
                        f"Item with id '{item.get('id')}' not found.",
                        "input",
                        "item_not_found",
                    )
            elif kind in (None, "message"):
                content = item.get("content")
                if isinstance(content, str):
                    if item.get("role") == "user":
                        texts.append(content)
                    continue
                if not isinstance(content, list):
                    raise _invalid(
                        f"Missing required parameter: 'input[{i}].content'.",
                        f"input[{i}].content",
                        "missing_required_parameter",
                    )
                for j, part in enumerate(content):
                    if not isinstance(part, dict):
                        continue
                    if part.get("type") == "input_text" and item.get("role") == "user":
                        texts.append(str(part.get("text", "")))
                    elif part.get("type") == "input_image":
                        self._check_input_image(part, f"input[{i}].content[{j}]")
                        images += 1
        return "\n".join(texts), images

    @staticmethod
    def _check_input_image(part: Mapping[str, Any], param: str) -> None:
        """A data URL must carry a supported MIME type and decodable base64."""
        url = part.get("image_url")
        if url is None and part.get("file_id") is None:
            raise _invalid(
                f"Missing required parameter: '{param}.image_url'.",
                f"{param}.image_url",
                "missing_required_parameter",
            )
        if isinstance(url, str) and url.startswith("data:"):
            match = re.fullmatch(r"data:([\w/+.-]+);base64,(.*)", url, re.DOTALL)
            if match is None or match.group(1) not in INPUT_IMAGE_MIME_TYPES | {"image/gif"}:
                raise _invalid(
                    f"Invalid '{param}.image_url'. Expected a base64-encoded data URL "
                    "with an image MIME type.",
                    f"{param}.image_url",
                    "invalid_value",
                )
            try:
                base64.b64decode(match.group(2), validate=True)
            except ValueError:
                raise _invalid(
                    f"Invalid '{param}.image_url': the base64 data is not valid.",
                    f"{param}.image_url",
                    "invalid_value",
                ) from None

    def _handle_responses(self, ctx: _Context) -> Response:
        """``POST /v1/responses`` (JSON) with an optional image_generation tool."""
        params = ctx.record.json
        if not isinstance(params, dict):
            raise _invalid("We could not parse the JSON body of your request.")
        params = {k: v for k, v in params.items() if v is not None}
        model = params.get("model")
        if not model or not isinstance(model, str):
            raise _invalid(
                "Missing required parameter: 'model'.", "model", "missing_required_parameter"
            )
        if model.startswith(("gpt-image", "dall-e", "chatgpt-image")):
            raise _invalid(
                f"The model '{model}' is an image model and cannot be used with the "
                "Responses API; use it in the image_generation tool instead.",
                "model",
                "model_not_supported",
            )
        if _truthy(params.get("stream")):
            raise _invalid(
                "FakeOpenAI does not implement streaming.", "stream", "unsupported_by_fake"
            )
        previous = params.get("previous_response_id")
        previous_stored: dict[str, Any] | None = None
        if previous is not None:
            with self._lock:
                previous_stored = self._responses.get(previous)
            if previous_stored is None:
                raise _invalid(
                    f"Previous response with id '{previous}' not found.",
                    "previous_response_id",
                    "previous_response_not_found",
                )
        raw_input = params.get("input")
        if isinstance(raw_input, str):
            prompt, input_images = raw_input, 0
        elif isinstance(raw_input, list):
            prompt, input_images = self._validate_input_items(raw_input)
        elif raw_input is None:
            prompt, input_images = "", 0
        else:
            raise _invalid("Invalid type for 'input'.", "input", "invalid_type")
        tools = params.get("tools") or []
        if not isinstance(tools, list):
            raise _invalid("Invalid type for 'tools': expected an array.", "tools")
        image_tool: dict[str, Any] | None = None
        echoed_tools: list[Any] = []
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and tool.get("type") == "image_generation":
                image_tool = {k: v for k, v in tool.items() if v is not None}
                tool_model = self._validate_image_model(
                    image_tool.get("model", DEFAULT_TOOL_IMAGE_MODEL), f"tools[{i}].model"
                )
                self._validate_image_options(image_tool, tool_model, f"tools[{i}].")
                if _truthy(image_tool.get("partial_images")):
                    raise _invalid(
                        "FakeOpenAI does not implement streaming partial images.",
                        f"tools[{i}].partial_images",
                        "unsupported_by_fake",
                    )
                image_tool.setdefault("model", tool_model)
                echoed_tools.append(image_tool)
            else:
                echoed_tools.append(tool)
        tool_choice = params.get("tool_choice", "auto")
        if (
            isinstance(tool_choice, dict)
            and tool_choice.get("type") == "image_generation"
            and image_tool is None
        ):
            raise _invalid(
                "Tool choice 'image_generation' not found in 'tools' parameter.",
                "tool_choice",
            )
        json_schema = self._validate_text_format(params.get("text"))
        fault, response = self._apply_fault(ctx, model)
        if response is not None:
            return response
        body = self._response_body(
            params, model, prompt, input_images, image_tool, echoed_tools, previous_stored, fault
        )
        if image_tool is None and json_schema is not None:
            self._structured_answer(body, json_schema, fault)
        if params.get("store", True) is not False:
            item_ids = [item["id"] for item in body["output"]]
            with self._lock:
                self._responses[body["id"]] = {"body": body, "item_ids": item_ids}
                self._items.update(item_ids)
        if ctx.record.outcome == "pending":
            ctx.record.outcome = "ok"
        ctx.record.response_json = body
        return self._json(200, body)

    def _response_body(
        self,
        params: Mapping[str, Any],
        model: str,
        prompt: str,
        input_images: int,
        image_tool: Mapping[str, Any] | None,
        tools: list[Any],
        previous: Mapping[str, Any] | None,
        fault: Fault | None,
    ) -> dict[str, Any]:
        """A completed Response: an ``image_generation_call`` item plus a message."""
        now = time.time()
        output: list[dict[str, Any]] = []
        text = "Done."
        image_usage: dict[str, Any] | None = None
        if image_tool is not None:
            tool_model = str(image_tool.get("model", DEFAULT_TOOL_IMAGE_MODEL))
            options = self._validate_image_options(image_tool, tool_model)
            action = image_tool.get("action", "auto")
            if action == "auto":
                has_source = input_images > 0 or previous is not None
                action = "edit" if has_source else "generate"
            call: dict[str, Any] = {
                "id": _new_id("ig"),
                "type": "image_generation_call",
                "action": action,
                "background": options["background"],
                "output_format": options["output_format"],
                "quality": options["quality"],
                "size": options["size"],
            }
            if fault is not None and fault.kind == "moderation":
                call.update(
                    status="failed",
                    result=None,
                    revised_prompt=None,
                    error={
                        "code": "moderation_blocked",
                        "message": self._moderation_message(fault),
                        "param": None,
                        "type": "image_generation_user_error",
                        **self._moderation_error_fields(fault),
                    },
                )
                text = "I can't create that image because it may violate our policies."
            else:
                if fault is not None and fault.kind == "malformed":
                    result = MALFORMED_PAYLOAD
                else:
                    raw = self.image_bytes(
                        prompt,
                        0,
                        options["size"],
                        options["output_format"],
                        options["background"] == "transparent",
                    )
                    result = base64.b64encode(raw).decode()
                call.update(
                    status="completed",
                    result=result,
                    revised_prompt=f"An image of: {prompt}".strip(),
                )
                text = "Here is the image you asked for."
                image_usage = self._usage(prompt, options, 1, input_images)
            output.append(call)
        output.append(
            {
                "id": _new_id("msg"),
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
        input_tokens = max(1, math.ceil(len(prompt) / 4)) + 20 + input_images * INPUT_IMAGE_TOKENS
        output_tokens = max(1, math.ceil(len(text) / 4))
        body: dict[str, Any] = {
            "id": _new_id("resp"),
            "object": "response",
            "created_at": now,
            "completed_at": now,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": params.get("instructions"),
            "max_output_tokens": params.get("max_output_tokens"),
            "metadata": params.get("metadata") or {},
            "model": model,
            "output": output,
            "parallel_tool_calls": params.get("parallel_tool_calls", True),
            "previous_response_id": params.get("previous_response_id"),
            "store": params.get("store", True),
            "temperature": params.get("temperature", 1.0),
            "text": params.get("text") or {"format": {"type": "text"}},
            "tool_choice": params.get("tool_choice", "auto"),
            "tools": tools,
            "top_p": params.get("top_p", 1.0),
            "truncation": params.get("truncation", "disabled"),
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
        }
        if image_usage is not None:
            body["tool_usage"] = {
                "image_gen": image_usage,
                "web_search": {"num_requests": 0},
            }
        return body

    @staticmethod
    def _validate_text_format(text: Any) -> dict[str, Any] | None:
        """``text.format``: the JSON schema of a ``json_schema`` format, else None.

        A strict schema must be closed and complete, as the real API insists: every object
        lists all its properties in ``required`` and sets ``additionalProperties: false``.
        """
        if text is None:
            return None
        found = text.get("format") if isinstance(text, dict) else None
        if not isinstance(found, dict) or found.get("type") != "json_schema":
            return None
        name = found.get("name")
        if not isinstance(name, str) or SCHEMA_NAME.fullmatch(name) is None:
            raise _invalid(
                "Invalid 'text.format.name': use a-z, A-Z, 0-9, underscores and dashes "
                "(at most 64).",
                "text.format.name",
                "invalid_value",
            )
        schema = found.get("schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise _invalid(
                "Invalid schema for response_format: the root must be an object.",
                "text.format.schema",
                "invalid_json_schema",
            )
        if found.get("strict"):
            _check_strict(schema, "text.format.schema")
        return schema

    def _structured_answer(
        self, body: dict[str, Any], schema: Mapping[str, Any], fault: Fault | None
    ) -> None:
        """Replace the message of ``body`` by the Structured Outputs answer (or its failure)."""
        message = body["output"][-1]
        kind = fault.kind if fault is not None else None
        if kind == "refusal":
            text = (fault.message if fault is not None else None) or DEFAULT_REFUSAL
            message["content"] = [{"type": "refusal", "refusal": text}]
        else:
            if kind == "malformed":
                text = MALFORMED_JSON
            else:
                with self._lock:
                    scripted = self._answers.popleft() if self._answers else None
                text = scripted if scripted is not None else json.dumps(_instance_of(schema))
            if kind == "incomplete":
                text = text[: len(text) // 2]
                message["status"] = "incomplete"
                body["status"] = "incomplete"
                body["incomplete_details"] = {"reason": "max_output_tokens"}
            message["content"] = [{"type": "output_text", "text": text, "annotations": []}]
        usage = body["usage"]
        usage["output_tokens"] = max(1, math.ceil(len(text) / 4))
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]

    # ------------------------------------------------------------------ control API

    def _control(self, request: Request) -> Response:
        """``/_fake/*`` endpoints so a standalone server can be steered and inspected.

        GET ``/_fake/stats``, GET ``/_fake/requests``, POST ``/_fake/fail_next``
        (JSON: path, kind, times and ``fail_next`` keywords), POST
        ``/_fake/latency`` (``{"latency": 0.5}``), POST ``/_fake/reset``.
        """
        try:
            payload = request.get_json(silent=True) or {}
            if request.path == "/_fake/stats" and request.method == "GET":
                with self._lock:
                    stats = {
                        "requests": len(self._requests),
                        "rejected": sum(r.outcome == "rejected" for r in self._requests),
                        "in_flight": self._in_flight,
                        "max_in_flight": self._max_in_flight,
                        "latency": self.latency,
                        "errors": len(self.errors),
                    }
                return self._json(200, stats)
            if request.path == "/_fake/requests" and request.method == "GET":
                return self._json(200, [r.summary() for r in self.requests])
            if request.path == "/_fake/fail_next" and request.method == "POST":
                options = dict(payload)
                path = str(options.pop("path"))
                kind = options.pop("kind")
                if "categories" in options:
                    options["categories"] = tuple(options["categories"])
                self.fail_next(path, kind, **options)
                return self._json(200, {"ok": True})
            if request.path == "/_fake/latency" and request.method == "POST":
                self.latency = float(payload["latency"])
                return self._json(200, {"ok": True, "latency": self.latency})
            if request.path == "/_fake/reset" and request.method == "POST":
                self.reset()
                return self._json(200, {"ok": True})
        except (KeyError, TypeError, ValueError) as exc:
            return self._json(400, {"error": {"message": str(exc), "type": "fake_control"}})
        return self._json(404, {"error": {"message": "unknown control endpoint"}})


def _check_strict(schema: Any, where: str) -> None:
    """Refuse a strict schema with an open or partly optional object, as the real API does."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object":
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            raise _invalid(
                f"Invalid schema for response_format: In context={where}, "
                "'additionalProperties' is required to be supplied and to be false.",
                "text.format.schema",
                "invalid_json_schema",
            )
        missing = sorted(set(properties) - set(schema.get("required") or []))
        if missing:
            raise _invalid(
                f"Invalid schema for response_format: In context={where}, 'required' is "
                f"required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'.",
                "text.format.schema",
                "invalid_json_schema",
            )
        for name, child in properties.items():
            _check_strict(child, f"{where}.{name}")
    if schema.get("type") == "array":
        _check_strict(schema.get("items"), f"{where}.items")


def _instance_of(schema: Any) -> Any:
    """A small value the schema accepts: the first enum value, the largest allowed integer,
    an empty array, a string its pattern allows; what a scripted test does not care about."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _instance_of(child) for name, child in properties.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("maximum", schema.get("minimum", 0))
    if kind == "boolean":
        return False
    if kind == "string":
        pattern = schema.get("pattern")
        for candidate in ("fake", "", "#808080"):
            if pattern is None or re.search(pattern, candidate):
                return candidate
        return "fake"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; first stdout line is the base URL (for benchmarks)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--api-key", default=None, help="only accept this bearer token")
    parser.add_argument("--image-scale", type=int, default=16)
    args = parser.parse_args(argv)
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server = FakeOpenAI(
        args.host,
        args.port,
        latency=args.latency,
        api_key=args.api_key,
        image_scale=args.image_scale,
    )
    with server:
        print(server.base_url, flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
