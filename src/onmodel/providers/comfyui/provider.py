"""The ``comfyui`` provider: the user's own ComfyUI workflow on a local ComfyUI server.

onmodel composes the prompt and picks the reference images (every member's anchor, the
parent, turnaround views, ``--ref`` files) as for any provider; the workflow decides what a
model does with them (IP-Adapter, PuLID, Kontext...). The images go to the workflow's
``{{image_1}}`` ... ``{{image_N}}`` slots in that order, so the planner asks
:meth:`ComfyUIProvider.input_limit` how many slots there are and fits the shot to them.

Local and free: nothing is billed, no key is needed, and there is no safety filter to be
blocked by. This module imports no HTTP client until a request is made, because the package
is imported just to list providers and read its model table.
"""

from __future__ import annotations

import mimetypes
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from onmodel.providers.base import (
    GenerationRequest,
    GenerationResult,
    InputImage,
    Provider,
    ProviderContext,
    ProviderError,
    ProviderStatus,
)
from onmodel.providers.comfyui.workflow import (
    EXAMPLE_PREFIX,
    Workflow,
    WorkflowError,
    fill,
    load,
    resolve,
)
from onmodel.providers.config import seconds_setting
from onmodel.settings import setting

if TYPE_CHECKING:
    import httpx2

    from onmodel.capabilities import ModelCapability
    from onmodel.providers.comfyui.server import ComfyUIService
    from onmodel.providers.http import HttpService

URL_ENV = "COMFYUI_URL"
DEFAULT_URL = "http://127.0.0.1:8188"
WORKFLOW_ENV = "ONMODEL_COMFYUI_WORKFLOW"
ANCHOR_WORKFLOW_ENV = "ONMODEL_COMFYUI_ANCHOR_WORKFLOW"
TIMEOUT_ENV = "ONMODEL_COMFYUI_TIMEOUT"
DEFAULT_TIMEOUT = 600.0
"""Seconds from queueing to the image: a first run loads the checkpoint from disk, and a
queue shared with the user's own work can hold several renders ahead of ours."""

ROUTE = "comfyui.prompt"
MODEL = "comfyui-workflow"
DEFAULT_SIZE = (1024, 1024)  # {{width}}/{{height}} when the size is auto
MAX_SEED = 2**64 - 1  # the largest seed ComfyUI's KSampler takes
RANDOM_SEEDS = 2**53
"""A seed onmodel draws stays below 2**53, so it survives any JSON reader (the ComfyUI web
page's JavaScript included) unchanged and can be typed back in to reproduce a shot."""

WORKFLOW_PARAMS = ("workflow", "anchor_workflow")
OWN_PARAMS = (*WORKFLOW_PARAMS, "seed", "negative_prompt", "output_node")


class ComfyUIProvider(Provider):
    """Fills the workflow, queues it, waits for it through ``/history``, downloads the image.

    ``transport`` and ``sleep`` are for tests and embedding (httpx2's test seam, the pause
    between polls and retries); by default real HTTP and real time.
    """

    name = "comfyui"
    billed = False
    own_params = OWN_PARAMS
    key_env = None
    keeps_conversation = False
    default_model = MODEL
    retry_backoff: ClassVar[float] = 0.5
    """Seconds before the first retry of a refused connection, 429 or 5xx (doubled each time):
    a local server that is restarting is back in a second or two, or not at all."""

    def __init__(
        self,
        context: ProviderContext | None = None,
        *,
        transport: httpx2.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(context)
        self._transport = transport
        self._sleep = sleep

    def api_route(self, n_input_images: int) -> str:
        return ROUTE

    # ------------------------------------------------------------------ before a request

    def preflight(self) -> None:
        """A malformed ``COMFYUI_URL`` or ``ONMODEL_COMFYUI_TIMEOUT`` is refused before the
        shot is recorded."""
        server_url()
        timeout_seconds()

    def status(self) -> ProviderStatus:
        """Asks the server itself (``GET /system_stats``, a second at most): a local engine
        is usable when it is running, not when a variable is set."""
        try:
            url = server_url()
        except ProviderError as exc:
            return ProviderStatus(False, str(exc))
        from onmodel.providers.comfyui.server import system_stats

        service = self._service(url, timeout=1.0, retries=0)
        try:
            stats = system_stats(service)
        except Exception:  # a status line must never break `onmodel providers`
            return ProviderStatus(
                False, f"no ComfyUI at {public_address(url)}: start it or set {URL_ENV}"
            )
        finally:
            service.close()
        return ProviderStatus(True, describe(public_address(url), stats))

    def resolve_params(self, params: Mapping[str, Any], base: Path) -> dict[str, Any]:
        """A workflow named by a relative path is stored absolute (``~`` expanded), so a
        session or shot list made in one folder runs from any other; a shipped example
        (``example:NAME``) is stored by that name, which finds it wherever onmodel is."""
        found = dict(params)
        for key in WORKFLOW_PARAMS:
            value = found.get(key)
            if isinstance(value, str) and not value.strip().startswith(EXAMPLE_PREFIX):
                found[key] = str(resolve(value, base)) if value.strip() else value
        return found

    def input_limit(self, params: Mapping[str, Any]) -> int:
        """The shot workflow's image slots; a workflow that cannot be read leaves the
        default, and :meth:`param_problems` says what is wrong with it."""
        chosen = choose_workflow(params, anchor=False)
        if chosen is None:
            return self.max_input_images
        try:
            return load(chosen[1]).slots
        except WorkflowError:
            return self.max_input_images

    def param_problems(self, params: Mapping[str, Any], capability: ModelCapability) -> list[str]:
        problems = super().param_problems(params, capability)
        named = [(key, params.get(key)) for key in WORKFLOW_PARAMS if params.get(key) is not None]
        if not named:
            named = [(env, setting(env)) for env in _env_workflows()]
        if not named:
            problems.append(
                f"comfyui needs a workflow: --param workflow=FILE (a ComfyUI workflow saved "
                f"in API format; example:anchor-sdxl and example:ipadapter-sdxl ship to "
                f"start from) or set {WORKFLOW_ENV}"
            )
        loaded: list[Workflow] = []
        for key, value in named:
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{key} must be the path of a workflow file, not {value!r}")
                continue
            try:
                loaded.append(load(value))
            except WorkflowError as exc:
                problems.append(str(exc))
        problems.extend(_value_problems(params, loaded))
        return problems

    def request_problems(self, request: GenerationRequest) -> list[str]:
        """A workflow whose image slots cannot take the request's images (the planner fits
        a shot's views to :meth:`input_limit`, but an anchor has no images for a shot
        workflow's slots)."""
        chosen = choose_workflow(request.params, anchor=not request.inputs)
        if chosen is None:
            return []
        try:
            workflow = load(chosen[1])
        except WorkflowError:
            return []  # param_problems says what is wrong with it
        problem = slot_problem(workflow, chosen, len(request.inputs))
        return [problem] if problem else []

    # ------------------------------------------------------------------ the request

    def generate(self, request: GenerationRequest) -> GenerationResult:
        from onmodel.providers.comfyui import server

        params = request.params
        chosen = choose_workflow(params, anchor=not request.inputs)
        if chosen is None:
            raise ProviderError(
                f"no ComfyUI workflow: --param workflow=FILE or set {WORKFLOW_ENV}", kind="config"
            )
        try:
            workflow = load(chosen[1])
        except WorkflowError as exc:
            raise ProviderError(str(exc), kind="config") from None
        problem = slot_problem(workflow, chosen, len(request.inputs))
        if problem is not None:
            raise ProviderError(problem, kind="invalid_request")
        url = server_url()
        poll = server.Poll(timeout_seconds(), sleep=self._sleep, timeout_env=TIMEOUT_ENV)
        service = self._service(url, timeout=60.0, retries=2)
        prompt_id: str | None = None
        try:
            names = upload_inputs(service, request.inputs)
            values = fill_values(workflow, request, names)
            prompt_id = server.queue(service, fill(workflow.graph, values), uuid.uuid4().hex)
            entry = server.wait(service, prompt_id, poll)
            output = params.get("output_node")
            ranked = [str(output)] if output is not None else workflow.output_nodes()
            node, image = server.output_image(entry, ranked, prompt_id, strict=output is not None)
            data = server.download(service, image)
        except ProviderError as exc:
            better = explained(exc, url, prompt_id)
            if better is exc:
                raise
            raise better from exc
        finally:
            service.close()
        fmt = image_format(data, prompt_id)
        sent = sent_params(params, workflow, values, names, request.inputs)
        sent.update(prompt_id=prompt_id, server=public_address(url), output_node=node)
        return GenerationResult(
            data=data,
            format=fmt,
            sent_params=sent,
            gen_id=prompt_id,
            response_id=prompt_id,
            returned={"output": image, "node": node},
        )

    def _service(self, url: str, *, timeout: float, retries: int) -> ComfyUIService:
        from onmodel.providers.comfyui.server import NAME, ComfyUIService

        return ComfyUIService(
            name=NAME,
            base_url=url,
            timeout=timeout,
            connect_timeout=min(5.0, timeout),
            retries=retries,
            backoff=self.retry_backoff,
            max_wait=30.0,
            transport=self._transport,
            sleep=self._sleep,
        )


# ---------------------------------------------------------------------- settings


def server_url() -> str:
    """``COMFYUI_URL`` (default ``http://127.0.0.1:8188``), without a trailing slash."""
    raw = setting(URL_ENV) or DEFAULT_URL
    if not raw.startswith(("http://", "https://")):
        raise ProviderError(
            f"{URL_ENV}={raw!r} is not an http:// or https:// address (e.g. {DEFAULT_URL})",
            kind="config",
        )
    return raw.rstrip("/")


def public_address(url: str) -> str:
    """The server's address as shown and recorded: a password in ``COMFYUI_URL`` (a
    reverse proxy's ``user:secret@``) and any query never leave the process."""
    from onmodel.providers.http import public_address as without_secrets

    return without_secrets(url)


def timeout_seconds() -> float:
    """``ONMODEL_COMFYUI_TIMEOUT``: seconds from queueing to the finished image."""
    return seconds_setting(TIMEOUT_ENV, DEFAULT_TIMEOUT)


def _env_workflows() -> list[str]:
    return [env for env in (ANCHOR_WORKFLOW_ENV, WORKFLOW_ENV) if setting(env)]


def choose_workflow(params: Mapping[str, Any], *, anchor: bool) -> tuple[str, str] | None:
    """``(where it came from, path)`` of the workflow a request runs, or None.

    A request with no input images (an anchor) takes ``anchor_workflow`` first, as a
    text-to-image graph has no slots for references; every request then takes ``workflow``;
    a parameter beats its variable, so one command can try another graph.
    """
    order = ["anchor_workflow", "workflow"] if anchor else ["workflow"]
    for key in order:
        value = params.get(key)
        if value is not None:
            return key, str(value)
    for env in [ANCHOR_WORKFLOW_ENV, WORKFLOW_ENV] if anchor else [WORKFLOW_ENV]:
        value = setting(env)
        if value:
            return env, value
    return None


def slot_problem(workflow: Workflow, chosen: tuple[str, str], n_inputs: int) -> str | None:
    """Why a request with ``n_inputs`` images cannot run this workflow, or None.

    Fewer images than slots is fine (the slots left are filled with the images again, in
    order: a two-slot anchor-and-parent graph runs a first shot, whose parent is the
    anchor); more than the slots, or images for a graph without slots, or none for one
    with slots, is not.
    """
    source = f"the workflow {chosen[1]} ({chosen[0]})"
    if n_inputs == 0 and workflow.slots:
        return (
            f"{source} has {workflow.slots} image slot(s) ({{{{image_1}}}}...) but this request "
            "has no input image (an anchor): give it a text-to-image workflow with "
            "--param anchor_workflow=FILE"
        )
    if n_inputs > workflow.slots:
        has = f"only {workflow.slots}" if workflow.slots else "no"
        return (
            f"this request sends {n_inputs} image(s) and {source} has {has} image slots "
            "({{image_1}} ... {{image_N}}): add slots to the workflow or send fewer images"
        )
    return None


# ---------------------------------------------------------------------- filling in


def _value_problems(params: Mapping[str, Any], loaded: list[Workflow]) -> list[str]:
    problems: list[str] = []
    seed = params.get("seed")
    if seed is not None and not (
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED
    ):
        problems.append(f"seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    negative = params.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        problems.append(f"negative_prompt must be text, not {negative!r}")
    output = params.get("output_node")
    if output is not None:
        for workflow in loaded:
            if str(output) not in workflow.graph:
                problems.append(
                    f"output_node {output} is not a node of the workflow {workflow.path.name}"
                )
    return problems


def fill_values(
    workflow: Workflow, request: GenerationRequest, names: list[str]
) -> dict[str, str | int]:
    """What each placeholder becomes. A seed is drawn only for a workflow that asks for
    one, and recorded with the image, so every shot can be run again exactly."""
    params = request.params
    values: dict[str, str | int] = {
        "prompt": request.prompt,
        "negative_prompt": str(params.get("negative_prompt") or ""),
    }
    if "seed" in workflow.names:
        seed = params.get("seed")
        if isinstance(seed, int):
            # takes 2, 3... of one request (a shot list's repeat, --takes) with a seed given:
            # the next seeds, as the same seed would only draw the same picture again
            values["seed"] = (seed + request.variation - 1) % (MAX_SEED + 1)
        else:
            values["seed"] = secrets.randbelow(RANDOM_SEEDS)
    if {"width", "height"} & workflow.names:
        values["width"], values["height"] = size_of(params.get("size"))
    for slot in range(workflow.slots):
        values[f"image_{slot + 1}"] = names[slot % len(names)]
    return values


def size_of(size: object) -> tuple[int, int]:
    from onmodel.capabilities import parse_size

    found = parse_size(size) if isinstance(size, str) else None
    return found or DEFAULT_SIZE


def upload_inputs(service: HttpService, inputs: tuple[InputImage, ...]) -> list[str]:
    """Upload each distinct input once (an image in two slots is one file); the names a
    LoadImage node takes, in the inputs' order."""
    from onmodel.providers.comfyui.server import upload
    from onmodel.providers.inputs import read_input

    uploaded: dict[str, str] = {}
    for item in inputs:
        if item.sha256 not in uploaded:
            uploaded[item.sha256] = upload(service, upload_name(item), read_input(item), item.mime)
    return [uploaded[item.sha256] for item in inputs]


def upload_name(item: InputImage) -> str:
    """The image's digest: the same reference is one file on the server however often it
    is sent, and a different image can never take its name."""
    extension = mimetypes.guess_extension(item.mime) or item.path.suffix or ".png"
    return f"{item.sha256}{extension}"


def sent_params(
    params: Mapping[str, Any],
    workflow: Workflow,
    values: Mapping[str, str | int],
    names: list[str],
    inputs: tuple[InputImage, ...],
) -> dict[str, Any]:
    """What is recorded with the image: the parameters, the workflow file that ran and its
    digest (the graph itself is not stored: the digest tells whether a file is the same),
    and every value filled in."""
    sent = {key: value for key, value in params.items() if key not in WORKFLOW_PARAMS}
    sent["workflow"] = str(workflow.path)
    sent["workflow_sha256"] = workflow.sha256
    sent["prompt_nodes"] = list(workflow.prompt_nodes)
    for key in ("seed", "width", "height"):
        if key in values:
            sent[key] = values[key]
    sent["images"] = [
        {"role": item.role, "sha256": item.sha256, "name": name}
        for item, name in zip(inputs, names, strict=True)
    ]
    sent["image_slots"] = [values[f"image_{slot + 1}"] for slot in range(workflow.slots)]
    return sent


# ---------------------------------------------------------------------- answers


def image_format(data: bytes, prompt_id: str) -> str:
    from onmodel.errors import InvalidImageError
    from onmodel.imagefile import inspect_bytes

    try:
        return inspect_bytes(data, source="the image ComfyUI returned").format
    except InvalidImageError:
        raise ProviderError(
            f"ComfyUI returned {len(data):,} bytes for prompt {prompt_id} that are not a "
            "readable image",
            kind="bad_response",
            response_id=prompt_id,
        ) from None


def explained(exc: ProviderError, url: str, prompt_id: str | None) -> ProviderError:
    """A refused connection says what to do about it; every failure after queueing names
    the prompt, so the user can find it in ComfyUI's history."""
    if exc.kind == "connection":
        return ProviderError(
            f"could not reach ComfyUI at {public_address(url)}: is ComfyUI running there? "
            "start it or set "
            f"{URL_ENV}",
            kind="connection",
            response_id=prompt_id,
        )
    if exc.response_id is None and prompt_id is not None:
        exc.response_id = prompt_id
    return exc


def describe(url: str, stats: Mapping[str, Any]) -> str:
    """``ComfyUI 0.3.68 at http://127.0.0.1:8188 (cuda:0 NVIDIA GeForce RTX 4090)``."""
    system = stats.get("system") if isinstance(stats.get("system"), dict) else {}
    version = (system or {}).get("comfyui_version")
    devices = stats.get("devices") if isinstance(stats.get("devices"), list) else []
    names = [str(d.get("name")) for d in devices or [] if isinstance(d, dict) and d.get("name")]
    label = f"ComfyUI {version}" if version else "ComfyUI"
    on = f" ({', '.join(names)})" if names else ""
    return f"{label} at {url}{on}"
