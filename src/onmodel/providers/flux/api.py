"""One FLUX.2 task over HTTP: submit, poll the address BFL hands out, download the picture.

BFL's API is asynchronous: ``POST /v1/<model>`` answers at once with a task id, a
``polling_url`` and the credits charged; ``GET polling_url`` says Pending until the task is
Ready (with a signed ``result.sample`` URL valid for minutes), moderated, or failed. Every call
goes through :class:`~onmodel.providers.http.HttpService`, so retries, Retry-After and the
error kinds are the same as every REST provider's; what is FLUX's own (a 422's field, the
poll's statuses, the poll's time limit) is mapped here.

The key goes out in the ``x-key`` header to BFL's API only: the download of the signed sample
URL is a separate client without it, and no message or record holds the URL's query.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2

from onmodel.providers.base import InputImage, ProviderError
from onmodel.providers.flux.config import POLL_ENV, TIMEOUT_ENV, FluxSettings
from onmodel.providers.flux.params import input_field
from onmodel.providers.http import HttpService, error_detail
from onmodel.providers.inputs import read_input

SERVICE = "FLUX (Black Forest Labs)"
FIRST_POLL_WAIT = 0.5  # BFL's own examples poll every 0.5 s
POLL_GROWTH = 1.5
MAX_POLL_WAIT = 4.0
"""A task takes seconds; waits grow from half a second so a quick task is seen quickly and a
slow one is not asked about twice a second for minutes."""
PENDING = "Pending"
MODERATED = frozenset({"Request Moderated", "Content Moderated"})


class FluxService(HttpService):
    """HttpService that names the field a 400/422 complains about (FastAPI's ``loc``)."""

    def status_error(
        self, response: httpx2.Response, attempts: int = 0, wait: float | None = None
    ) -> ProviderError:
        error = super().status_error(response, attempts, wait)
        if response.status_code in (400, 422):
            fields = _invalid_fields(response)
            if fields:
                where = ", ".join(fields)
                return ProviderError(
                    f"{SERVICE} rejected the request (HTTP {response.status_code}, field "
                    f"{where}): {error_detail(response) or 'no details'}",
                    kind="invalid_request",
                    code=error.code,
                )
        return error


def _invalid_fields(response: httpx2.Response) -> list[str]:
    try:
        data: Any = response.json()
    except ValueError:
        return []
    details = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(details, list):
        return []
    found: list[str] = []
    for item in details:
        loc = item.get("loc") if isinstance(item, dict) else None
        if isinstance(loc, list) and loc:
            name = str(loc[-1])
            if name not in found:
                found.append(name)
    return found


@dataclass
class Task:
    """What came back from one task: the picture's bytes and what BFL said about it."""

    task_id: str
    data: bytes
    submitted: dict[str, Any]
    result: dict[str, Any]
    sample_url: str


@dataclass
class FluxClient:
    """Submits one task and follows it to its picture; ``sleep`` is the test seam."""

    settings: FluxSettings
    sleep: Callable[[float], None] = time.sleep
    _api: FluxService | None = field(default=None, init=False, repr=False)

    @property
    def api(self) -> FluxService:
        if self._api is None:
            self._api = FluxService(
                name=SERVICE,
                base_url=self.settings.url,
                headers={"x-key": self.settings.key, "accept": "application/json"},
                timeout=self.settings.timeout,
                retries=self.settings.retries,
                backoff=FIRST_POLL_WAIT,
                sleep=self.sleep,
                timeout_env=TIMEOUT_ENV,
            )
        return self._api

    def run(self, endpoint: str, body: Mapping[str, Any]) -> Task:
        """Submit, wait for the task, download its picture; every failure a ProviderError
        that carries the task id (and the credits charged) once there is one."""
        submitted = self.api.json("POST", endpoint, json=dict(body))
        task_id = submitted.get("id")
        polling_url = submitted.get("polling_url")
        if not isinstance(task_id, str) or not task_id or not isinstance(polling_url, str):
            raise ProviderError(
                f"{SERVICE} accepted the request but sent no task id or polling_url",
                kind="bad_response",
            )
        charged = charged_usage(submitted)
        try:
            result = self._wait(task_id, polling_url)
            sample = result.get("sample") if isinstance(result, dict) else None
            if not isinstance(sample, str) or not sample:
                raise ProviderError(
                    f"{SERVICE} task {task_id} is Ready but names no result.sample",
                    kind="bad_response",
                )
            data = self._download(sample)
        except ProviderError as exc:
            exc.response_id = exc.response_id or task_id
            if exc.usage is None and charged:
                exc.usage = charged
            raise
        return Task(task_id, data, submitted, result, sample)

    def _wait(self, task_id: str, polling_url: str) -> dict[str, Any]:
        """Poll until Ready, with growing waits, for at most ``poll_seconds`` (counted both
        as time passed and as time slept, so a test's instant sleep still runs out)."""
        started = time.monotonic()
        slept = 0.0
        pause = FIRST_POLL_WAIT
        limit = self.settings.poll_seconds
        while True:
            answer = self.api.json("GET", polling_url)
            status = answer.get("status")
            if status == "Ready":
                result = answer.get("result")
                return result if isinstance(result, dict) else {}
            if status in MODERATED:
                categories = _moderation_reasons(answer.get("details"))
                said = f": {', '.join(categories)}" if categories else ""
                raise ProviderError(
                    f"{SERVICE} blocked task {task_id} ({status}){said}",
                    kind="moderation",
                    code=str(status),
                    categories=categories,
                    response_id=task_id,
                )
            if status != PENDING:
                raise _failed_task(task_id, status, answer)
            elapsed = max(time.monotonic() - started, slept)
            if elapsed >= limit:
                raise ProviderError(
                    f"{SERVICE} task {task_id} was still {status} after {limit:g} s "
                    f"(set {POLL_ENV} to wait longer)",
                    kind="timeout",
                    response_id=task_id,
                )
            wait = min(pause, limit - elapsed)
            self.sleep(wait)
            slept += wait
            pause = min(pause * POLL_GROWTH, MAX_POLL_WAIT)

    def _download(self, url: str) -> bytes:
        """The signed sample URL, fetched without the key (it lives on BFL's delivery hosts,
        and the signature in its query is all it needs)."""
        downloads = HttpService(
            name=f"{SERVICE} delivery",
            base_url="",
            timeout=self.settings.timeout,
            retries=self.settings.retries,
            backoff=FIRST_POLL_WAIT,
            sleep=self.sleep,
            timeout_env=TIMEOUT_ENV,
        )
        try:
            return downloads.request("GET", url).content
        finally:
            downloads.close()

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None


def charged_usage(submitted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The credits a submission reports, kept on a failure's usage so the row shows them."""
    cost = submitted.get("cost")
    return {"cost_credits": cost} if isinstance(cost, int | float) else None


def _moderation_reasons(details: object) -> list[str]:
    """BFL names reasons in ``details`` (``{"Moderation Reasons": [...]}``); any list of
    strings found there is kept as the categories."""
    if not isinstance(details, dict):
        return []
    found: list[str] = []
    for value in details.values():
        if isinstance(value, list):
            found += [str(item) for item in value if isinstance(item, str | int)]
        elif isinstance(value, str) and value:
            found.append(value)
    return found


def _failed_task(task_id: str, status: object, answer: Mapping[str, Any]) -> ProviderError:
    if status == "Task not found":
        return ProviderError(
            f"{SERVICE} no longer knows task {task_id} (Task not found)",
            kind="bad_response",
            code="Task not found",
            response_id=task_id,
        )
    if status == "Error":
        details = answer.get("details")
        said = f": {_short(details)}" if details else ""
        return ProviderError(
            f"{SERVICE} task {task_id} failed (Error){said}",
            kind="server",
            code="Error",
            response_id=task_id,
        )
    return ProviderError(
        f"{SERVICE} task {task_id} has a status onmodel does not know: {_short(status)}",
        kind="bad_response",
        response_id=task_id,
    )


def _short(value: object) -> str:
    flat = " ".join(str(value).split())
    return flat if len(flat) <= 200 else flat[:199] + "…"


def encoded_inputs(inputs: Sequence[InputImage]) -> dict[str, str]:
    """``input_image``, ``input_image_2``, ...: each file's bytes, checked against the digest
    the studio recorded, as base64 (BFL takes base64 or a URL; onmodel's files are local)."""
    return {
        input_field(index): base64.b64encode(read_input(item)).decode("ascii")
        for index, item in enumerate(inputs)
    }
