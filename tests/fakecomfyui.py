"""A local ComfyUI server for tests: the HTTP API of comfyanonymous/ComfyUI's ``server.py``.

Why a real server: the provider speaks HTTP through httpx2, and what is worth testing is
exactly the HTTP (multipart field names, the graph's JSON, polling, retries), so tests point
``COMFYUI_URL`` at this server on 127.0.0.1.

What it does, as the real server does where that is cheap:

* ``POST /upload/image``: multipart ``image`` (+ ``overwrite``, ``type``, ``subfolder``),
  answers ``{name, subfolder, type}``;
* ``POST /prompt``: ``{prompt, client_id}``; the graph is validated (an object of nodes,
  each with a known ``class_type`` and ``inputs``; links ``[node_id, index]`` to existing
  nodes; INT inputs are numbers; a LoadImage names an uploaded file; at least one output
  node) and refused with 400 ``{error: {type, message, details, extra_info}, node_errors}``;
  answers ``{prompt_id, number, node_errors}``;
* ``GET /history/{prompt_id}``: ``{}`` while the prompt "runs" (``slow_polls`` polls), then
  ``{prompt_id: {prompt, outputs, status: {status_str, completed, messages}}}``;
* ``GET /view``: a real tiny PNG, a figure on a white ground whose colour is a hash of the
  positive prompt text (or stripes of the ``#rrggbb`` colours it names, so a palette check
  can pass);
* ``GET /system_stats``, ``GET /queue``.

Faults (``fail_next``): ``rate_limit`` (429 with Retry-After: 0), ``server_error`` (500) on
any endpoint; per prompt: ``execution_error``, ``never_finishes``, ``no_outputs``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from werkzeug.wrappers import Request, Response

from localserver import LocalServer

VERSION = "0.3.75"
OUTPUT_CLASSES = frozenset({"SaveImage", "PreviewImage"})
INT_INPUTS: dict[str, tuple[str, ...]] = {
    "KSampler": ("seed", "steps"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CLIPTextEncode": ("text", "clip"),
    "KSampler": ("seed", "steps", "cfg", "model", "positive", "negative", "latent_image"),
    "EmptyLatentImage": ("width", "height"),
    "VAEDecode": ("samples", "vae"),
    "VAEEncode": ("pixels", "vae"),
    "LoadImage": ("image",),
    "SaveImage": ("images",),
    "PreviewImage": ("images",),
    "IPAdapterUnifiedLoader": ("model", "preset"),
    "IPAdapterAdvanced": ("model", "ipadapter", "image"),
    "ImageBatch": ("image1", "image2"),
    "ReferenceLatent": ("conditioning",),
    "FluxKontextImageScale": ("image",),
}
HEX = re.compile(r"#([0-9a-fA-F]{6})\b")


@dataclass
class Recorded:
    method: str
    path: str
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Job:
    prompt_id: str
    number: int
    graph: dict[str, Any]
    outcome: str  # "success", "execution_error", "never_finishes", "no_outputs"
    polls_left: int


class FakeComfyUI(LocalServer):
    """A threaded ComfyUI-like server on 127.0.0.1; use as a context manager."""

    def __init__(self, *, slow_polls: int = 0) -> None:
        self.slow_polls = slow_polls
        self.requests: list[Recorded] = []
        self.rejected: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}  # "subfolder/name" under input/
        self.jobs: dict[str, Job] = {}
        self._faults: dict[str, deque[str]] = {}
        self._outcomes: deque[str] = deque()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    # ------------------------------------------------------------------ scripting

    def fail_next(self, path: str, kind: str, times: int = 1) -> None:
        """The next ``times`` requests to ``path`` (``/prompt``...) fail: ``rate_limit`` or
        ``server_error``."""
        with self._lock:
            self._faults.setdefault(path, deque()).extend([kind] * times)

    def next_prompt(self, outcome: str) -> None:
        """How the next queued prompt ends: ``execution_error``, ``never_finishes``,
        ``no_outputs``."""
        with self._lock:
            self._outcomes.append(outcome)

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path or r.path.startswith(path + "/")]

    @property
    def graphs(self) -> list[dict[str, Any]]:
        """Every graph queued (accepted), in order."""
        return [job.graph for job in sorted(self.jobs.values(), key=lambda j: j.number)]

    # ------------------------------------------------------------------ serving

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        path = request.path
        record = Recorded(request.method, path, query=dict(request.args))
        if request.mimetype == "application/json":
            record.json = request.get_json(silent=True)
        elif request.mimetype == "multipart/form-data":
            record.form = dict(request.form)
            record.files = {
                name: (item.filename or "", item.read()) for name, item in request.files.items()
            }
        with self._lock:
            self.requests.append(record)
            faults = self._faults.get(path) or self._faults.get(_route(path))
            fault = faults.popleft() if faults else None
        if fault == "rate_limit":
            return _json({"error": "too many requests"}, 429, {"Retry-After": "0"})
        if fault == "server_error":
            return Response("500 Internal Server Error", 500)
        if request.method == "POST" and path == "/upload/image":
            return self._upload(record)
        if request.method == "POST" and path == "/prompt":
            return self._prompt(record.json)
        if request.method == "GET" and path.startswith("/history/"):
            return self._history(path.removeprefix("/history/"))
        if request.method == "GET" and path == "/view":
            return self._view(record.query)
        if request.method == "GET" and path == "/system_stats":
            return _json(
                {
                    "system": {"os": "posix", "comfyui_version": VERSION, "embedded_python": False},
                    "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 0}],
                }
            )
        if request.method == "GET" and path == "/queue":
            return _json({"queue_running": [], "queue_pending": []})
        return Response("404: Not Found", 404)

    def _upload(self, record: Recorded) -> Response:
        if "image" not in record.files:
            return Response(status=400)
        name, data = record.files["image"]
        kind = record.form.get("type", "input")
        if kind not in ("input", "temp", "output") or not name or "/" in name:
            return Response(status=400)
        subfolder = record.form.get("subfolder", "")
        key = f"{subfolder}/{name}" if subfolder else name
        overwrite = record.form.get("overwrite", "").lower() in ("true", "1")
        if key in self.files and not overwrite and self.files[key] != data:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem} (1).{ext}" if dot else f"{name} (1)"
            key = f"{subfolder}/{name}" if subfolder else name
        self.files[key] = data
        return _json({"name": name, "subfolder": subfolder, "type": kind})

    def _prompt(self, body: Any) -> Response:
        if not isinstance(body, dict) or "prompt" not in body:
            return self._refuse("no_prompt", "No prompt provided", "No prompt provided", {})
        graph = body["prompt"]
        if not isinstance(graph, dict):
            return self._refuse("invalid_prompt", "Invalid prompt", "not an object", {})
        for node_id, node in graph.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return self._refuse(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                    {},
                )
            if node["class_type"] not in REQUIRED:
                return self._refuse(
                    "missing_node_type",
                    f"Node '{node['class_type']}' not found. The custom node may not be installed.",
                    f"Node ID '#{node_id}'",
                    {},
                )
        outputs = [n for n, node in graph.items() if node["class_type"] in OUTPUT_CLASSES]
        if not outputs:
            return self._refuse("prompt_no_outputs", "Prompt has no outputs", "", {})
        node_errors = {
            node_id: {
                "errors": errors,
                "dependent_outputs": outputs,
                "class_type": node["class_type"],
            }
            for node_id, node in graph.items()
            if (errors := self._node_errors(graph, node))
        }
        if node_errors:
            return self._refuse(
                "prompt_outputs_failed_validation",
                "Prompt outputs failed validation",
                "",
                node_errors,
            )
        with self._lock:
            outcome = self._outcomes.popleft() if self._outcomes else "success"
            job = Job(uuid.uuid4().hex, len(self.jobs), graph, outcome, self.slow_polls)
            self.jobs[job.prompt_id] = job
        return _json({"prompt_id": job.prompt_id, "number": job.number, "node_errors": {}})

    def _node_errors(self, graph: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            return [_error("required_input_missing", "Required input is missing", "inputs")]
        errors: list[dict[str, Any]] = []
        kind = node["class_type"]
        for name in REQUIRED[kind]:
            if name not in inputs:
                errors.append(_error("required_input_missing", "Required input is missing", name))
        for name, value in inputs.items():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) not in graph:
                errors.append(
                    _error("bad_linked_input", "Bad linked input, must be a length-2 list", name)
                )
        for name in INT_INPUTS.get(kind, ()):
            value = inputs.get(name)
            if name in inputs and not isinstance(value, list) and type(value) is not int:
                errors.append(
                    _error(
                        "invalid_input_type",
                        f"Failed to convert an input value to a INT value: {name}, {value}",
                        name,
                    )
                )
        image = inputs.get("image")
        if kind == "LoadImage" and isinstance(image, str) and image not in self.files:
            errors.append(
                _error(
                    "custom_validation_failed",
                    "Custom validation failed for node",
                    "image",
                    f"image - Invalid image file: {image}",
                )
            )
        return errors

    def _refuse(
        self, kind: str, message: str, details: str, node_errors: dict[str, Any]
    ) -> Response:
        body = {
            "error": {"type": kind, "message": message, "details": details, "extra_info": {}},
            "node_errors": node_errors,
        }
        self.rejected.append(body)
        return _json(body, 400)

    def _history(self, prompt_id: str) -> Response:
        with self._lock:
            job = self.jobs.get(prompt_id)
            if job is None:
                return _json({})
            if job.outcome == "never_finishes":
                return _json({})
            if job.polls_left > 0:
                job.polls_left -= 1
                return _json({})
        started = ["execution_start", {"prompt_id": prompt_id, "timestamp": 1}]
        if job.outcome == "execution_error":
            node_id = next(n for n, node in job.graph.items() if node["class_type"] == "KSampler")
            error = {
                "prompt_id": prompt_id,
                "node_id": node_id,
                "node_type": "KSampler",
                "executed": [],
                "exception_message": "CUDA out of memory. Tried to allocate 2.00 GiB",
                "exception_type": "torch.OutOfMemoryError",
                "traceback": ["..."],
                "current_inputs": {},
                "current_outputs": {},
            }
            status = {
                "status_str": "error",
                "completed": False,
                "messages": [started, ["execution_error", error]],
            }
            outputs: dict[str, Any] = {}
        else:
            status = {
                "status_str": "success",
                "completed": True,
                "messages": [started, ["execution_success", {"prompt_id": prompt_id}]],
            }
            outputs = {} if job.outcome == "no_outputs" else self._outputs(job)
        return _json(
            {
                prompt_id: {
                    "prompt": [job.number, prompt_id, job.graph, {}, list(outputs)],
                    "outputs": outputs,
                    "status": status,
                    "meta": {},
                }
            }
        )

    def _outputs(self, job: Job) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for node_id, node in job.graph.items():
            if node["class_type"] in OUTPUT_CLASSES:
                kind = "output" if node["class_type"] == "SaveImage" else "temp"
                name = f"{job.prompt_id}_{node_id}.png"
                found[node_id] = {"images": [{"filename": name, "subfolder": "", "type": kind}]}
        return found

    def _view(self, query: dict[str, str]) -> Response:
        name = query.get("filename", "")
        prompt_id = name.split("_")[0]
        job = self.jobs.get(prompt_id)
        if job is None or query.get("type") not in ("output", "temp"):
            return Response("404: Not Found", 404)
        return Response(_png(prompt_text(job.graph)), 200, mimetype="image/png")


def prompt_text(graph: dict[str, Any]) -> str:
    """The positive prompt: the text of the CLIPTextEncode node KSampler's positive links."""
    for node in graph.values():
        if node["class_type"] == "KSampler":
            link = node["inputs"].get("positive")
            if isinstance(link, list) and str(link[0]) in graph:
                return str(graph[str(link[0])]["inputs"].get("text", ""))
    return ""


def _png(text: str) -> bytes:
    """A figure on a plain white ground, in stripes of the colours the prompt names (a
    sheet's palette), else in one colour hashed from the prompt: a palette check finds a
    subject and measures colours, as it would on a real render that followed the prompt."""
    colours = [tuple(bytes.fromhex(h)) for h in dict.fromkeys(HEX.findall(text))]
    if not colours:
        digest = hashlib.sha256(text.encode()).digest()
        colours = [(digest[0], digest[1], digest[2])]
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    top, bottom = 10, 58
    band = max(1, (bottom - top) // len(colours))
    for index, colour in enumerate(colours):
        end = bottom if index == len(colours) - 1 else top + (index + 1) * band
        image.paste(colour, (20, top + index * band, 44, end))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _error(kind: str, message: str, name: str, details: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "message": message,
        "details": details or name,
        "extra_info": {"input_name": name},
    }


def _route(path: str) -> str:
    return "/history" if path.startswith("/history/") else path


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers=headers, mimetype="application/json")
