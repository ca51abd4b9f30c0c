"""The ``openai-responses`` provider: the Responses API with the ``image_generation`` tool.

This route keeps a conversation: the first turn carries the consistency primer (as
``instructions``) and the reference images; every later turn names the previous response
(``previous_response_id``) so the model sees the whole series so far, which is what the ChatGPT
app does and why this route tends to keep a character steadier than one-off edits.

Facts from the SDK this relies on:

* ``tool_choice={"type": "image_generation"}`` (``ToolChoiceTypesParam``) forces the tool, so a
  turn always yields an image call instead of a chatty question;
* ``instructions`` are not carried over by ``previous_response_id``, so they are sent each turn;
* a bare ``{"type": "image_generation_call", "id": "ig_…"}`` is not valid input (the item needs
  its result), so earlier images are reached only through ``previous_response_id``;
* a refused image is a 200 answer whose ``image_generation_call`` has ``status="failed"`` and an
  ``error`` with ``code="moderation_blocked"`` and ``moderation_details.categories``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import openai
from openai.types.responses import Response
from openai.types.responses.response_output_item import ImageGenerationCall

from onmodel.providers.base import (
    GenerationRequest,
    GenerationResult,
    InputImage,
    ParentTurn,
    ProviderError,
)
from onmodel.providers.inputs import decode_image, read_input, sent_images
from onmodel.providers.openai.base import OpenAIProvider
from onmodel.providers.openai.errors import moderation_categories
from onmodel.providers.openai.inputs import image_options, input_fidelity_for
from onmodel.settings import Settings

if TYPE_CHECKING:
    from onmodel.capabilities import ModelCapability

__all__ = [
    "DEFAULT_RESPONSES_MODEL",
    "TOOL_OPTIONS",
    "OpenAIResponsesProvider",
    "responses_model",
]

DEFAULT_RESPONSES_MODEL = "gpt-6-astra"
"""The mainline model that drives the conversation and calls the image tool.

The SDK (openai 3.54) uses ``gpt-6-astra`` as its example for ``responses.create`` ("Model ID
used to generate the response, like `gpt-6-astra`") and lists it first in ``ChatModel``. The
image itself is drawn by ``request.model`` inside the tool; this model only reads the prompt.
"""

TOOL_OPTIONS: tuple[str, ...] = (
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
)
"""Image options copied from the request's params into the ``image_generation`` tool."""

_RETURNED_FIELDS: tuple[str, ...] = ("size", "quality", "background", "output_format", "action")
_MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation"})


def responses_model(params: dict[str, Any], settings: Settings) -> str:
    """``params["responses_model"]``, else ``$ONMODEL_RESPONSES_MODEL``, else the default."""
    chosen = params.get("responses_model") or settings.responses_model
    return str(chosen) if chosen else DEFAULT_RESPONSES_MODEL


class OpenAIResponsesProvider(OpenAIProvider):
    """Generates through ``client.responses.create`` with the image tool forced."""

    name = "openai-responses"
    keeps_conversation = True
    resource = "responses"

    def api_route(self, n_input_images: int) -> str:
        return "responses"

    def conversation(
        self, *, instructions: str | None, parent: ParentTurn, started: Callable[[], bool]
    ) -> dict[str, Any]:
        """Continue the *parent's* response, so a branch from an older image picks up that
        image's conversation; a parent from outside the session (the anchor) or from another
        route starts a new one, in which the anchor image is sent."""
        continues = parent.in_session and parent.provider == self.name
        return {
            "instructions": instructions,
            "previous_response_id": parent.response_id if continues else None,
        }

    def attached(self, request: GenerationRequest) -> tuple[InputImage, ...]:
        return _images_for_turn(request)

    def send(self, client: openai.OpenAI, request: GenerationRequest) -> GenerationResult:
        """Run one conversation turn and return its image."""
        capability = self.context.capability(request.model)
        kwargs, sent = _create_arguments(request, capability, self.context.settings)
        return _result(client.responses.create(**kwargs), sent)


def _images_for_turn(request: GenerationRequest) -> tuple[InputImage, ...]:
    """What to attach: everything on the first turn, only what is new afterwards.

    On the first turn nothing is in the conversation yet, so the anchors (and the parent, when
    a shot branches from another image) must be attached. Later turns already contain the
    anchors shown so far and every image since through ``previous_response_id``; re-sending
    them would pay for the same input tokens again. A cast member the conversation has not
    been shown (:attr:`GenerationRequest.introduced`) is new on the turn where it first
    appears, so its anchor and views go then; extra references (``--ref``) are new to every
    turn, so they always go.
    """
    if request.previous_response_id is None:
        return request.inputs
    return tuple(
        item for item in request.inputs if item.role == "extra" or request.new_to_conversation(item)
    )


def _create_arguments(
    request: GenerationRequest, capability: ModelCapability | None, settings: Settings
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``responses.create`` keyword arguments, and the flat record of them for the studio."""
    model = responses_model(request.params, settings)
    images = _images_for_turn(request)
    content: list[dict[str, Any]] = [{"type": "input_text", "text": request.prompt}]
    for item in images:
        encoded = base64.b64encode(read_input(item)).decode("ascii")
        content.append(
            {
                "type": "input_image",
                "image_url": f"data:{item.mime};base64,{encoded}",
                "detail": "high",  # faces are what must match; low detail blurs them away
            }
        )
    tool: dict[str, Any] = {
        "type": "image_generation",
        "model": request.model,
        **image_options(request.params, TOOL_OPTIONS),
    }
    if images or request.previous_response_id is not None:
        fidelity = input_fidelity_for(capability, request.params)
        if fidelity is not None:
            tool["input_fidelity"] = fidelity
    kwargs: dict[str, Any] = {
        "model": model,
        "input": [{"role": "user", "content": content}],
        "tools": [tool],
        "tool_choice": {"type": "image_generation"},
        "store": True,  # previous_response_id only works on stored responses
    }
    if request.instructions:
        kwargs["instructions"] = request.instructions
    if request.previous_response_id is not None:
        kwargs["previous_response_id"] = request.previous_response_id

    sent: dict[str, Any] = {key: value for key, value in tool.items() if key != "type"}
    sent["responses_model"] = model
    sent["tool_choice"] = "image_generation"
    sent["store"] = True
    if request.previous_response_id is not None:
        sent["previous_response_id"] = request.previous_response_id
    if request.instructions:
        # The primer is long and rendered by the studio; its digest says which one was sent.
        digest = hashlib.sha256(request.instructions.encode("utf-8")).hexdigest()
        sent["instructions_sha256"] = digest
    if images:
        sent["images"] = sent_images(images)
    sent["conversation_cast"] = request.conversation_cast()
    return kwargs, sent


def _result(response: Response, sent: dict[str, Any]) -> GenerationResult:
    """The first image call's picture, or the reason there is none."""
    usage = _usage(response)
    call = next((item for item in response.output if isinstance(item, ImageGenerationCall)), None)
    if call is None:
        raise ProviderError(
            f"OpenAI answered without calling the image tool ({_why_no_image(response)})",
            kind="bad_response",
            usage=usage,
            response_id=response.id,
        )
    if call.status == "failed":
        raise _failed_call(call, usage, response.id)
    if not call.result:
        raise ProviderError(
            f"the image call {call.id} ended {call.status} without an image",
            kind="bad_response",
            usage=usage,
            response_id=response.id,
        )
    try:
        data, fmt = decode_image(call.result, source="the image OpenAI returned")
    except ProviderError as exc:
        exc.usage, exc.response_id = usage, response.id
        raise
    returned = {
        name: getattr(call, name) for name in _RETURNED_FIELDS if getattr(call, name) is not None
    }
    return GenerationResult(
        data=data,
        format=fmt,
        sent_params=sent,
        revised_prompt=call.revised_prompt,
        gen_id=call.id,
        response_id=response.id,
        usage=usage,
        returned=returned,
    )


def _failed_call(
    call: ImageGenerationCall, usage: dict[str, Any] | None, rid: str
) -> ProviderError:
    """A failed image call: ``moderation`` with its categories, else ``bad_response``."""
    error = call.error
    code = error.code if error is not None else None
    if error is not None and code in _MODERATION_CODES:
        categories = moderation_categories(error)
        label = f"{code}: {', '.join(categories)}" if categories else str(code)
        return ProviderError(
            f"OpenAI refused the image under its content policy ({label})",
            kind="moderation",
            code=code,
            categories=categories,
            usage=usage,
            response_id=rid,
        )
    detail = " ".join(error.message.split())[:300] if error is not None else "no details"
    return ProviderError(
        f"the image call {call.id} failed ({code or 'no code'}): {detail}",
        kind="bad_response",
        code=code,
        usage=usage,
        response_id=rid,
    )


def _usage(response: Response) -> dict[str, Any] | None:
    """Usage in the Image API's shape, priced by the studio as the image model's tokens.

    The image tool's tokens (``tool_usage.image_gen``) are what the image model's prices apply
    to, so they are the top level, exactly like an Image API ``usage``. The mainline model's own
    tokens (``response.usage``) are billed at that model's rates and are kept beside them under
    ``responses_usage`` / ``responses_model``, never mixed in, so a cost estimate built from
    the top level never prices text-model tokens as image tokens.
    """
    usage: dict[str, Any] = {}
    tool_usage = response.tool_usage
    if tool_usage is not None:
        usage.update(tool_usage.image_gen.model_dump())
    if response.usage is not None:
        usage["responses_model"] = response.model
        usage["responses_usage"] = response.usage.model_dump()
    return usage or None


def _why_no_image(response: Response) -> str:
    """One line: the response status and whatever the model or the API said instead."""
    parts = [f"status {response.status or 'unknown'}"]
    if response.error is not None:
        parts.append(f"{response.error.code}: {response.error.message}")
    elif response.incomplete_details is not None and response.incomplete_details.reason:
        parts.append(f"incomplete: {response.incomplete_details.reason}")
    text = " ".join(response.output_text.split())
    if text:
        parts.append(f"said: {text[:200]}")
    return "; ".join(parts)
