"""The ``openai-images`` provider: OpenAI's Image API, one image per call.

Requests without input images go to ``images.generate``; requests with input images (every shot:
the anchor, then the parent, then extra references) go to ``images.edit``, which is how GPT image
models see the reference they must stay consistent with. The capability check asks
:meth:`OpenAIImagesProvider.api_route` for the same rule, so what was checked is what is sent.

Only parameters the chosen endpoint takes are sent, and ``sent_params`` records exactly those:
the DALL·E-era ``response_format`` and ``style`` are never sent (GPT image models reject them),
``moderation`` only exists on ``generate``, and ``input_fidelity`` only goes to models whose
capability row lists it.
"""

from __future__ import annotations

from typing import Any

import openai
from openai.types import ImagesResponse

from onmodel.providers.base import (
    GenerationRequest,
    GenerationResult,
    InputImage,
    ProviderError,
)
from onmodel.providers.inputs import decode_image, read_input, sent_images
from onmodel.providers.openai.base import OpenAIProvider
from onmodel.providers.openai.inputs import image_options, input_fidelity_for

__all__ = ["EDIT_OPTIONS", "GENERATE_OPTIONS", "OpenAIImagesProvider"]

GENERATE_OPTIONS: tuple[str, ...] = (
    "size",
    "quality",
    "background",
    "output_format",
    "output_compression",
    "moderation",
)
"""Options taken from the request's params for ``images.generate``, in the order sent."""

EDIT_OPTIONS: tuple[str, ...] = tuple(name for name in GENERATE_OPTIONS if name != "moderation")
"""``images.edit`` has no ``moderation`` parameter; ``input_fidelity`` is decided separately."""

_RETURNED_FIELDS: tuple[str, ...] = ("size", "quality", "background", "output_format")
_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


class OpenAIImagesProvider(OpenAIProvider):
    """Generates through ``client.images.generate`` / ``client.images.edit``."""

    name = "openai-images"
    resource = "images"

    def api_route(self, n_input_images: int) -> str:
        """Shots carry the anchor image, so they go to ``images.edit``; anchors to generate."""
        return "images.edit" if n_input_images > 0 else "images.generate"

    def send(self, client: openai.OpenAI, request: GenerationRequest) -> GenerationResult:
        if request.inputs:
            return self._edit(client, request)
        return self._generate(client, request)

    def _generate(self, client: openai.OpenAI, request: GenerationRequest) -> GenerationResult:
        options = image_options(request.params, GENERATE_OPTIONS)
        sent: dict[str, Any] = {"model": request.model, **options, "n": 1}
        response = client.images.generate(prompt=request.prompt, **sent)
        return _result(response, sent)

    def _edit(self, client: openai.OpenAI, request: GenerationRequest) -> GenerationResult:
        options = image_options(request.params, EDIT_OPTIONS)
        fidelity = input_fidelity_for(self.context.capability(request.model), request.params)
        if fidelity is not None:
            options["input_fidelity"] = fidelity
        files = [_upload(item, index) for index, item in enumerate(request.inputs)]
        sent: dict[str, Any] = {"model": request.model, **options, "n": 1}
        response = client.images.edit(prompt=request.prompt, image=files, **sent)
        return _result(response, {**sent, "images": sent_images(request.inputs)})


def _upload(item: InputImage, index: int) -> tuple[str, bytes, str]:
    """A ``(filename, bytes, mime)`` part: bare bytes would go out as application/octet-stream,
    which the API refuses as an unsupported image type."""
    extension = _EXTENSIONS.get(item.mime, "")
    return (f"{index:02d}-{item.role}{extension}", read_input(item), item.mime)


def _result(response: ImagesResponse, sent: dict[str, Any]) -> GenerationResult:
    """Turn an ImagesResponse into a GenerationResult; no image at all is ``bad_response``."""
    usage = response.usage.model_dump() if response.usage is not None else None
    if not response.data:
        raise ProviderError(
            "OpenAI answered without an image (empty data)", kind="bad_response", usage=usage
        )
    try:
        data, fmt = decode_image(response.data[0].b64_json, source="the image OpenAI returned")
    except ProviderError as exc:
        exc.usage = usage  # the call was billed even though the payload is unusable
        raise
    returned = {
        name: getattr(response, name)
        for name in _RETURNED_FIELDS
        if getattr(response, name, None) is not None
    }
    return GenerationResult(
        data=data,
        format=fmt,
        sent_params=sent,
        revised_prompt=None,  # GPT image models never return one on the Image API
        usage=usage,
        returned=returned,
    )
