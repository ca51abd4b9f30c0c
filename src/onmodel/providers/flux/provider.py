"""The ``flux`` provider: FLUX.2 [pro], [max] and [flex] through BFL's REST API.

Each request stands alone (BFL keeps no conversation), so what keeps a character on model is
what every request carries: each cast member's anchor first, then its views and the parent, as
``input_image`` ... ``input_image_8``, and the sheet's hex palette that the prompt templates
already write out (FLUX.2 reads hex colours). A random seed is sent when none is asked for and
recorded, so any picture can be asked for again with ``--param seed=``.

Costs are BFL's own figures: the credits a task reports (1 credit = $0.01, ``usd_per_credit``
in this package's ``prices.yaml``); the megapixel table prices the estimate before a call, and
a finished task only when it reported no credits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onmodel.providers.base import (
    GenerationRequest,
    GenerationResult,
    Provider,
    ProviderContext,
    ProviderError,
)
from onmodel.providers.flux.config import KEY_ENV
from onmodel.providers.flux.params import OWN_PARAMS, flex_only_problem, flux_param_problems

if TYPE_CHECKING:
    from onmodel.capabilities import ModelCapability, PriceTable
    from onmodel.providers.flux.api import Task

GENERATE_ROUTE = "flux.generate"
EDIT_ROUTE = "flux.edit"

DEFAULT_PIXELS = 1024 * 1024
"""What ``auto`` makes without input images: BFL's default width and height are 1024."""
MAX_PIXELS = 2048 * 2048
"""FLUX.2's largest output (4 MP). ``auto`` with input images follows the first input's size,
so an estimate counts it at this, and counts each input image at it too: the estimate is
given no file to measure, and BFL bills input megapixels."""


class FluxProvider(Provider):
    """Submits to ``/v1/<model>``, polls, downloads; ``sleep`` is for tests (waits seen, not
    spent)."""

    name = "flux"
    billed = True
    max_input_images = 8
    own_params = OWN_PARAMS
    key_env = KEY_ENV
    keeps_conversation = False
    default_model = "flux-2-pro"

    def __init__(
        self,
        context: ProviderContext | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(context)
        self._sleep = sleep

    def api_route(self, n_input_images: int) -> str:
        """With input images FLUX.2 edits (the same endpoint, ``input_image`` fields set)."""
        return EDIT_ROUTE if n_input_images > 0 else GENERATE_ROUTE

    def param_problems(self, params: Mapping[str, Any], capability: ModelCapability) -> list[str]:
        flex_only = flex_only_problem(capability.name, params)
        return [
            *super().param_problems(params, capability),
            *flux_param_problems(params),
            *([flex_only] if flex_only else []),
        ]

    def preflight(self) -> None:
        """A malformed ``ONMODEL_FLUX_*`` setting is refused before the shot is recorded."""
        from onmodel.providers.flux.config import FluxSettings

        FluxSettings.from_environment()

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """One task: every failure is a ProviderError carrying the task id once there is one."""
        from onmodel.providers.flux.api import FluxClient, encoded_inputs
        from onmodel.providers.flux.config import FluxSettings
        from onmodel.providers.flux.params import request_options
        from onmodel.providers.inputs import sent_images

        settings = FluxSettings.from_environment()
        options = request_options(request.params)
        body = {"prompt": request.prompt, **encoded_inputs(request.inputs), **options}
        endpoint = f"/v1/{request.model}"
        client = FluxClient(settings)
        if self._sleep is not None:
            client.sleep = self._sleep
        try:
            task = client.run(endpoint, body)
        finally:
            client.close()
        sent: dict[str, Any] = {
            "model": request.model,
            "endpoint": endpoint,
            **options,
            "input_images": len(request.inputs),
        }
        if request.inputs:
            sent["images"] = sent_images(request.inputs)
        return _result(task, sent)

    def cost(
        self,
        model: str,
        usage: Mapping[str, Any] | None,
        returned: Mapping[str, Any],
        prices: PriceTable,
    ) -> Decimal | None:
        """The credits BFL reported, in dollars; the megapixel table only when it reported
        none. None (unknown) when neither can say."""
        price = prices.get(model)
        if price is None:
            return None
        # a finished task keeps its credits in ``returned``; a failed one that BFL had
        # already charged carries them in ``usage`` (see api.FluxClient.run)
        credits = _decimal(returned.get("cost_credits", (usage or {}).get("cost_credits")))
        if credits is not None:
            return None if price.usd_per_credit is None else credits * price.usd_per_credit
        from onmodel.capabilities import megapixel_cost, parse_size

        size = returned.get("size")
        dims = parse_size(size) if isinstance(size, str) else None
        if dims is None:
            return None
        input_mp = _decimal(returned.get("input_mp")) or Decimal(0)
        return megapixel_cost(price, dims[0] * dims[1], [int(input_mp * 1_000_000)])

    def estimate_max_cost(self, request: GenerationRequest, prices: PriceTable) -> Decimal | None:
        """The megapixel price of the largest picture the request can make, and of its
        inputs at their own sizes (read from their headers; one that cannot be read counts
        at FLUX.2's largest, :data:`MAX_PIXELS`, as an upper bound must)."""
        from onmodel.capabilities import megapixel_cost, parse_size

        price = prices.get(request.model)
        if price is None:
            return None
        size = request.params.get("size")
        dims = parse_size(size) if isinstance(size, str) else None
        if dims is not None:
            output = dims[0] * dims[1]
        else:
            output = MAX_PIXELS if request.inputs else DEFAULT_PIXELS
        return megapixel_cost(price, output, [_pixels(item.path) for item in request.inputs])


def _pixels(path: Path) -> int:
    """An input image's pixels, from its header (Pillow reads no more of the file)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as found:
            width, height = found.size
    except (OSError, UnidentifiedImageError):
        return MAX_PIXELS
    return int(width * height)


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        found = Decimal(str(value))
    except InvalidOperation:
        return None
    return found if found.is_finite() and found >= 0 else None


def _result(task: Task, sent: dict[str, Any]) -> GenerationResult:
    """The picture, checked to be one, and what BFL reported about it."""
    from onmodel.errors import InvalidImageError
    from onmodel.imagefile import inspect_bytes
    from onmodel.providers.flux.api import charged_usage
    from onmodel.providers.http import public_address

    try:
        info = inspect_bytes(task.data, source="the picture FLUX returned")
    except InvalidImageError as exc:
        raise ProviderError(
            f"the picture FLUX returned for task {task.task_id} is not a readable image "
            f"({len(task.data):,} bytes)",
            kind="bad_response",
            response_id=task.task_id,
            usage=charged_usage(task.submitted),
        ) from exc
    seed = task.result.get("seed", sent.get("seed"))
    returned: dict[str, Any] = {
        "seed": seed,
        "size": f"{info.width}x{info.height}",
        "result_url": public_address(task.sample_url),  # the signature grants access
    }
    for name, key in (
        ("cost", "cost_credits"),
        ("input_mp", "input_mp"),
        ("output_mp", "output_mp"),
    ):
        value = task.submitted.get(name, task.result.get(name))
        if isinstance(value, int | float) and not isinstance(value, bool):
            returned[key] = value
    return GenerationResult(
        data=task.data,
        format=info.format,
        sent_params=sent,
        gen_id=task.task_id,
        response_id=task.task_id,
        returned=returned,
    )
