"""Talking to a ComfyUI server: upload, queue, wait, download, and its answers read as errors.

ComfyUI's HTTP API (``server.py`` in comfyanonymous/ComfyUI) is what its own web page uses:
``POST /upload/image`` (multipart ``image``), ``POST /prompt`` (``{prompt, client_id}``),
``GET /history/{prompt_id}`` (``{}`` until the prompt has finished), ``GET /view``.
Progress is followed by polling ``/history`` rather than the ``/ws`` websocket: it needs no
websocket client, survives a dropped connection, and a finished prompt is found the same way
whether it took a second or ten minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

from onmodel.providers.base import ProviderError
from onmodel.providers.http import HttpService, error_detail

NAME = "ComfyUI"
UPLOAD_SUBFOLDER = "onmodel"
"""Where uploads go under ComfyUI's input folder, so onmodel's references stay apart from
the user's own."""


@dataclass
class ComfyUIService(HttpService):
    """:class:`HttpService` that reads ComfyUI's own error bodies (``node_errors``)."""

    def status_error(
        self, response: httpx2.Response, attempts: int = 0, wait: float | None = None
    ) -> ProviderError:
        if response.status_code == 400:
            refused = workflow_refusal(response)
            if refused is not None:
                return refused
        return super().status_error(response, attempts, wait)


def workflow_refusal(response: httpx2.Response) -> ProviderError | None:
    """``POST /prompt``'s 400 (``{error: {type, message, details}, node_errors}``) as one
    line naming the first node that failed validation, its class and why."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict | str):
        return None
    error = body["error"] if isinstance(body["error"], dict) else {"message": body["error"]}
    code = str(error.get("type") or "") or None
    nodes = body.get("node_errors") if isinstance(body.get("node_errors"), dict) else {}
    for node_id, found in (nodes or {}).items():
        if not isinstance(found, dict):
            continue
        errors = [e for e in found.get("errors") or [] if isinstance(e, dict)]
        first = errors[0] if errors else {}
        said = "; ".join(
            part for part in (first.get("message"), first.get("details")) if part
        ) or str(error.get("message") or "invalid")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        others = len(nodes or {}) - 1
        also = f"; {others} other node(s) failed too" if others > 0 else ""
        return ProviderError(
            f"ComfyUI refused the workflow: node {node_id} ({found.get('class_type', '?')}): "
            f"{_flat(said)}{more}{also}",
            kind="invalid_request",
            code=code,
        )
    said = "; ".join(str(part) for part in (error.get("message"), error.get("details")) if part)
    return ProviderError(
        f"ComfyUI refused the workflow: {_flat(said) or error_detail(response) or 'no details'}",
        kind="invalid_request",
        code=code,
    )


@dataclass
class Poll:
    """How long to wait for a queued prompt, and how often to ask."""

    limit: float  # seconds in all, from queueing to the outputs
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    timeout_env: str = ""
    first: float = field(init=False)
    most: float = field(init=False)

    def __post_init__(self) -> None:
        # ask often at first (a cached graph finishes at once), then back off to a few
        # seconds: a long render is not made faster by asking
        self.first = min(0.25, self.limit / 40)
        self.most = min(2.0, self.limit / 10)


def upload(service: HttpService, name: str, data: bytes, mime: str) -> str:
    """Upload an input image under ``name`` and return what a LoadImage node takes:
    ``subfolder/name`` as the server stored it. ``overwrite``: the name is the image's
    digest, so the same reference uploaded again replaces itself instead of piling up."""
    answer = service.json(
        "POST",
        "/upload/image",
        files={"image": (name, data, mime)},
        data={"overwrite": "true", "type": "input", "subfolder": UPLOAD_SUBFOLDER},
    )
    stored = answer.get("name")
    if not isinstance(stored, str) or not stored:
        raise ProviderError("ComfyUI answered the upload without a file name", kind="bad_response")
    folder = answer.get("subfolder")
    return f"{folder}/{stored}" if isinstance(folder, str) and folder else stored


def queue(service: HttpService, graph: Mapping[str, Any], client_id: str) -> str:
    """Queue the filled graph; its ``prompt_id``."""
    answer = service.json("POST", "/prompt", json={"prompt": graph, "client_id": client_id})
    prompt_id = answer.get("prompt_id")
    if not isinstance(prompt_id, str) or not prompt_id:
        raise ProviderError("ComfyUI queued the workflow without a prompt_id", kind="bad_response")
    return prompt_id


def wait(service: HttpService, prompt_id: str, poll: Poll) -> Mapping[str, Any]:
    """The prompt's history entry once it has finished (``outputs``, ``status``); failures
    the server reports (an execution error) and running out of time raise."""
    deadline = poll.clock() + poll.limit
    pause = poll.first
    while True:
        answer = service.json("GET", f"/history/{prompt_id}")
        entry = answer.get(prompt_id)
        if isinstance(entry, dict) and _finished(entry):
            _raise_failure(entry, prompt_id)
            return entry
        left = deadline - poll.clock()
        if left <= 0:
            longer = f"; set {poll.timeout_env} to wait longer" if poll.timeout_env else ""
            raise ProviderError(
                f"ComfyUI did not finish prompt {prompt_id} within {poll.limit:g} s (it may "
                f"still be queued or running{longer})",
                kind="timeout",
                response_id=prompt_id,
            )
        poll.sleep(min(pause, left))
        pause = min(poll.most, pause * 1.5)


def _finished(entry: Mapping[str, Any]) -> bool:
    status = entry.get("status")
    if isinstance(status, dict):
        return bool(status.get("completed")) or status.get("status_str") == "error"
    return bool(entry.get("outputs"))  # older servers wrote no status


def _raise_failure(entry: Mapping[str, Any], prompt_id: str) -> None:
    status = entry.get("status")
    if not isinstance(status, dict) or status.get("status_str") != "error":
        return
    for message in status.get("messages") or []:
        if not (isinstance(message, list | tuple) and len(message) == 2):
            continue
        event, data = message
        if event == "execution_error" and isinstance(data, dict):
            raise ProviderError(
                f"ComfyUI failed running prompt {prompt_id}: node {data.get('node_id', '?')} "
                f"({data.get('node_type', '?')}): "
                f"{_flat(str(data.get('exception_message') or data.get('exception_type') or ''))}",
                kind="server",
                code=str(data.get("exception_type") or "") or None,
                response_id=prompt_id,
            )
        if event == "execution_interrupted":
            raise ProviderError(
                f"ComfyUI prompt {prompt_id} was interrupted (cancelled on the server)",
                kind="server",
                code="interrupted",
                response_id=prompt_id,
            )
    raise ProviderError(
        f"ComfyUI failed running prompt {prompt_id} (status error, no message)",
        kind="server",
        response_id=prompt_id,
    )


def output_image(
    entry: Mapping[str, Any], ranked: list[str], prompt_id: str, *, strict: bool = False
) -> tuple[str, dict[str, str]]:
    """The node and the first image to fetch: from the nodes in ``ranked`` order, else (not
    ``strict``: the user named no output node) from any node that made images."""
    outputs = entry.get("outputs")
    outputs = outputs if isinstance(outputs, dict) else {}
    others = [] if strict else [n for n in outputs if n not in ranked]
    for node_id in [*ranked, *others]:
        found = outputs.get(node_id)
        images = found.get("images") if isinstance(found, dict) else None
        if isinstance(images, list) and images and isinstance(images[0], dict):
            first = images[0]
            if isinstance(first.get("filename"), str):
                fields = ("filename", "subfolder", "type")
                return node_id, {key: str(first.get(key) or "") for key in fields}
    which = f"node {ranked[0]} made no image" if strict else "no node made an image"
    raise ProviderError(
        f"ComfyUI finished prompt {prompt_id} without an image ({which}: does the workflow "
        "end in a SaveImage or PreviewImage node?)",
        kind="bad_response",
        response_id=prompt_id,
    )


def download(service: HttpService, image: Mapping[str, str]) -> bytes:
    return service.request("GET", "/view", params=dict(image)).content


def system_stats(service: HttpService) -> Mapping[str, Any]:
    return service.json("GET", "/system_stats")


def _flat(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 300 else flat[:299] + "…"
