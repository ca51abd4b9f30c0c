"""A local stand-in for Black Forest Labs' FLUX.2 API, on 127.0.0.1, for the flux provider's
tests.

It holds requests to the shapes BFL documents (read 2026-12-02) and answers what BFL answers:

* ``POST /v1/flux-2-pro|max|flex``: the ``x-key`` header (403 without the right one), a JSON
  object with only the documented fields, a non-empty ``prompt``; ``input_image``,
  ``input_image_2`` ... ``input_image_8`` with no gap, each base64 of a real picture or an
  http(s) URL; ``width``/``height`` multiples of 16, at least 64, at most 4 MP; an integer
  ``seed``; ``safety_tolerance`` 0-5; ``output_format`` jpeg or png; ``steps``/``guidance``
  on [flex] only. Anything else is a 422 in FastAPI's shape (``detail[].loc`` names the
  field), kept in :attr:`FakeFlux.rejected`. A good request answers ``{id, polling_url, cost,
  input_mp, output_mp}``; ``polling_url`` is an absolute address with a query, as BFL's is.
* ``GET /v1/get_result?id=``: Pending for the task's scripted number of polls, then Ready with
  ``result.sample`` (a signed download address on this server) and ``seed``; or a scripted
  end (moderated, Error), or Pending forever; an unknown id is "Task not found".
* ``GET /delivery/<id>.<ext>?sig=``: the picture (a tiny one, coloured by the prompt); it
  notes when a key is sent there (the real delivery host must never see it).

Faults: :meth:`FakeFlux.fail_next` scripts HTTP answers for the next submissions (429 with
Retry-After, 500, 503, 402, 422, 403); :meth:`FakeFlux.next_task` scripts how the next task
ends. Every request is recorded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from werkzeug.wrappers import Request, Response

from localserver import LocalServer

KEY = "test-key"
MODELS = {
    # credits: first megapixel, each further megapixel, per input megapixel (BFL's table)
    "flux-2-pro": (3.0, 1.5, 1.5),
    "flux-2-max": (7.0, 3.0, 3.0),
    "flux-2-flex": (5.0, 5.0, 5.0),
}
IMAGE_FIELDS = ("input_image", *(f"input_image_{n}" for n in range(2, 9)))
COMMON_FIELDS = frozenset(
    {
        "prompt",
        *IMAGE_FIELDS,
        "seed",
        "width",
        "height",
        "safety_tolerance",
        "output_format",
        "prompt_upsampling",
        "webhook_url",
        "webhook_secret",
    }
)
FLEX_FIELDS = frozenset({"steps", "guidance"})
MAX_PIXELS = 2048 * 2048
SCALE = 16  # returned pictures are the asked size divided by this: tiny, but in proportion


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    status: int = 0
    scripted: bool = False  # answered by a scripted fault, not judged

    @property
    def image_fields(self) -> list[str]:
        body = self.json if isinstance(self.json, dict) else {}
        return [name for name in IMAGE_FIELDS if name in body]

    def image_bytes(self) -> list[bytes]:
        return [base64.b64decode(self.json[name]) for name in self.image_fields]


@dataclass
class TaskPlan:
    """How a task ends: ``pending`` polls answer Pending first; then ``end`` (Ready, Request
    Moderated, Content Moderated, Error) or, with ``forever``, Pending for ever."""

    pending: int = 0
    end: str = "Ready"
    forever: bool = False
    details: dict[str, Any] | None = None
    picture: bytes | None = None  # what the download serves instead of a real picture


@dataclass
class _Task:
    id: str
    model: str
    body: dict[str, Any]
    size: tuple[int, int]
    seed: int
    plan: TaskPlan
    polls: int = 0
    picture_size: tuple[int, int] = (1, 1)


@dataclass
class _Fault:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class _Invalid(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


class FakeFlux(LocalServer):
    """Use as a context manager; point ``ONMODEL_FLUX_URL`` at :attr:`url`."""

    def __init__(self, key: str = KEY) -> None:
        self.key = key  # the one key it accepts
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.tasks: dict[str, _Task] = {}
        self._faults: deque[_Fault] = deque()
        self._plans: deque[TaskPlan] = deque()
        self.default_pending = 1
        self.key_sent_to_delivery = False

    # ------------------------------------------------------------------ lifecycle

    # ------------------------------------------------------------------ scripting

    def fail_next(
        self, status: int, *, times: int = 1, retry_after: str | None = None, field: str = ""
    ) -> None:
        """The next ``times`` submissions answer ``status`` (BFL's bodies for each)."""
        bodies: dict[int, dict[str, Any]] = {
            402: {"detail": "Insufficient credits"},
            403: {"detail": "Not authenticated - Invalid Authentication"},
            429: {"detail": "You have exceeded the number of active tasks (24)"},
            500: {"detail": "Internal Server Error"},
            503: {"detail": "Service Unavailable"},
            422: {
                "detail": [
                    {"loc": ["body", field or "prompt"], "msg": "invalid value", "type": "value"}
                ]
            },
        }
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        for _ in range(times):
            self._faults.append(_Fault(status, bodies.get(status, {"detail": "error"}), headers))

    def next_task(self, plan: TaskPlan) -> None:
        self._plans.append(plan)

    # ------------------------------------------------------------------ views

    def submissions(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def accepted(self) -> list[Recorded]:
        return [r for r in self.submissions() if r.status == 200]

    @property
    def rejected(self) -> list[Recorded]:
        return [r for r in self.submissions() if r.status == 422 and not r.scripted]

    def polls(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/v1/get_result"]

    # ------------------------------------------------------------------ serving

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body: Any = None
        if request.method == "POST":
            try:
                body = json.loads(request.get_data() or b"null")
            except ValueError:
                body = "<not json>"
        record = Recorded(
            request.method,
            request.path,
            dict(request.args),
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        with self._lock:
            self.requests.append(record)
        response = self._answer(request, record)
        record.status = response.status_code
        return response(environ, start_response)

    def _answer(self, request: Request, record: Recorded) -> Response:
        if request.path.startswith("/delivery/"):
            return self._deliver(request)
        if record.headers.get("x-key") != self.key:
            return _json(403, {"detail": "Not authenticated - Invalid Authentication"})
        if request.method == "POST" and request.path.startswith("/v1/"):
            model = request.path.removeprefix("/v1/")
            if model not in MODELS:
                return _json(404, {"detail": "Not Found"})
            with self._lock:
                fault = self._faults.popleft() if self._faults else None
            if fault is not None:
                record.scripted = True
                return _json(fault.status, fault.body, fault.headers)
            try:
                return self._submit(model, record.json)
            except _Invalid as exc:
                detail = [{"loc": ["body", exc.field], "msg": exc.message, "type": "value_error"}]
                return _json(422, {"detail": detail})
        if request.method == "GET" and request.path == "/v1/get_result":
            return self._poll(request.args.get("id", ""))
        return _json(404, {"detail": "Not Found"})

    def _submit(self, model: str, body: Any) -> Response:
        if not isinstance(body, dict):
            raise _Invalid("body", "expected a JSON object")
        allowed = COMMON_FIELDS | (FLEX_FIELDS if model == "flux-2-flex" else frozenset())
        for name in body:
            if name not in allowed:
                raise _Invalid(name, "extra fields not permitted")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Invalid("prompt", "field required")
        present = [name for name in IMAGE_FIELDS if name in body]
        if present != list(IMAGE_FIELDS[: len(present)]):
            raise _Invalid(present[-1], "input images must be numbered without gaps")
        input_sizes = [_input_size(name, body[name]) for name in present]
        width, height = body.get("width"), body.get("height")
        for name, value in (("width", width), ("height", height)):
            if value is not None and not (_is_int(value) and value >= 64 and value % 16 == 0):
                raise _Invalid(name, "must be a multiple of 16 and at least 64")
        if (width is None) != (height is None):
            raise _Invalid("width" if width is None else "height", "give width and height")
        if width is not None and height is not None and width * height > MAX_PIXELS:
            raise _Invalid("width", "more than 4 megapixels")
        seed = body.get("seed")
        if seed is not None and not _is_int(seed):
            raise _Invalid("seed", "must be an integer")
        tolerance = body.get("safety_tolerance")
        if tolerance is not None and not (_is_int(tolerance) and 0 <= tolerance <= 5):
            raise _Invalid("safety_tolerance", "must be 0 to 5")
        if body.get("output_format", "jpeg") not in ("jpeg", "png"):
            raise _Invalid("output_format", "must be jpeg or png")
        if "prompt_upsampling" in body and not isinstance(body["prompt_upsampling"], bool):
            raise _Invalid("prompt_upsampling", "must be a boolean")
        if width is not None and height is not None:
            size = (width, height)
        elif input_sizes:
            size = input_sizes[0]  # BFL: without width/height an edit keeps the first input's
        else:
            size = (1024, 1024)
        # pictures are tiny: the asked size divided by SCALE; an edit of a (tiny) input keeps
        # its size, so a series does not shrink shot by shot
        shown = size if size in input_sizes[:1] and width is None else _scaled(size)
        task_id = str(uuid.uuid4())
        with self._lock:
            plan = self._plans.popleft() if self._plans else TaskPlan(self.default_pending)
            self.tasks[task_id] = _Task(
                task_id, model, body, size, seed if isinstance(seed, int) else 7, plan, 0, shown
            )
        first, further, per_input = MODELS[model]
        output_mp = size[0] * size[1] / 1e6
        input_mp = sum(w * h for w, h in input_sizes) / 1e6
        cost = first + further * max(0, math.ceil(output_mp) - 1) + per_input * input_mp
        return _json(
            200,
            {
                "id": task_id,
                "polling_url": f"{self.url}/v1/get_result?id={task_id}",
                "cost": round(cost, 4),
                "input_mp": round(input_mp, 4),
                "output_mp": round(output_mp, 4),
            },
        )

    def _poll(self, task_id: str) -> Response:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None:
                return _json(200, {"id": task_id, "status": "Task not found"})
            task.polls += 1
            plan = task.plan
            pending = plan.forever or task.polls <= plan.pending
        if pending:
            return _json(200, {"id": task_id, "status": "Pending", "progress": 0.5})
        if plan.end != "Ready":
            answer: dict[str, Any] = {"id": task_id, "status": plan.end, "result": None}
            if plan.details is not None:
                answer["details"] = plan.details
            return _json(200, answer)
        ext = "png" if task.body.get("output_format") == "png" else "jpeg"
        sample = f"{self.url}/delivery/{task_id}.{ext}?se=2026-12-02&sig=s3cr3t-signature"
        return _json(
            200,
            {
                "id": task_id,
                "status": "Ready",
                "result": {"sample": sample, "seed": task.seed, "prompt": task.body["prompt"]},
            },
        )

    def _deliver(self, request: Request) -> Response:
        if request.headers.get("x-key") is not None:
            self.key_sent_to_delivery = True
        if request.args.get("sig") != "s3cr3t-signature":
            return Response("signature required", status=403)
        name = request.path.removeprefix("/delivery/")
        task_id, _, ext = name.rpartition(".")
        with self._lock:
            task = self.tasks.get(task_id)
        if task is None:
            return Response("gone", status=404)
        if task.plan.picture is not None:
            return Response(task.plan.picture, mimetype="image/png")
        return Response(_picture(task, ext), mimetype=f"image/{ext}")


def _picture(task: _Task, ext: str) -> bytes:
    digest = hashlib.sha256(task.body["prompt"].encode()).digest()
    buffer = io.BytesIO()
    Image.new("RGB", task.picture_size, tuple(digest[:3])).save(buffer, ext.upper())
    return buffer.getvalue()


def _scaled(size: tuple[int, int]) -> tuple[int, int]:
    return (max(1, size[0] // SCALE), max(1, size[1] // SCALE))


def _input_size(name: str, value: Any) -> tuple[int, int]:
    if not isinstance(value, str) or not value:
        raise _Invalid(name, "must be base64 or a URL")
    if value.startswith(("http://", "https://")):
        return (1024, 1024)
    try:
        data = base64.b64decode(value, validate=True)
        with Image.open(io.BytesIO(data)) as picture:
            picture.load()
            return picture.size
    except (binascii.Error, ValueError, OSError) as exc:
        raise _Invalid(name, "not a base64-encoded image") from exc


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, mimetype="application/json", headers=headers or {}
    )
