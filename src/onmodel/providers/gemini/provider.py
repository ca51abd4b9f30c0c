"""The ``gemini`` provider: Google's Gemini image models through the google-genai SDK.

Continuity is the SDK's chat: Gemini keeps nothing on the server, so each shot opens
``client.chats.create(history=...)`` with the last :attr:`GeminiProvider.history_turns` turns
onmodel recorded (prompt, picture, the model's words and thought signatures) and sends the new
message. That is the Gemini counterpart of OpenAI's ``previous_response_id``. The anchors go
as image parts with every turn as well (see :func:`history.images_for_turn`).

The SDK is imported only when a request is sent: this module is loaded to list providers and
to check requests, which must stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from onmodel.providers.base import (
    GenerationRequest,
    GenerationResult,
    InputImage,
    Provider,
    ProviderError,
    ProviderStatus,
)
from onmodel.providers.gemini.client import API_VERSION
from onmodel.providers.gemini.history import (
    history_contents,
    images_for_turn,
    message_parts,
)
from onmodel.providers.gemini.sizes import estimate_size, image_config, image_size_of, size_problems
from onmodel.providers.inputs import sent_images
from onmodel.settings import is_set

if TYPE_CHECKING:
    from onmodel.capabilities import ModelCapability, PriceTable

__all__ = ["ROUTE", "GeminiProvider"]

ROUTE = "gemini.generate_content"
"""The one API route (``models.generateContent``), declared in this plugin's models.yaml."""


class GeminiProvider(Provider):
    """Gemini image generation and editing through a chat of the last few turns."""

    name = "gemini"
    billed = True
    key_env = "GEMINI_API_KEY"
    also_key_env = ("GOOGLE_API_KEY",)  # the SDK prefers it when both are set
    keeps_conversation = True
    history_turns = 4
    """Four turns: enough for the model to see where the scene has been going, few enough to
    stay cheap, because every resent turn's picture is paid for again as input (560 tokens an
    image on Gemini 3 Pro Image) on every later shot."""
    max_input_images = 14
    own_params = ("aspect_ratio", "image_size", "seed")
    """Gemini 3 Pro Image's limit (Google's guide: up to 14 reference images); each model's
    own is in the table."""
    default_model = "gemini-3-pro-image"
    """The generally available Gemini 3 image model the SDK lists: 14 references, 1K to 4K."""

    def preflight(self) -> None:
        """The SDK missing (onmodel installed without its ``gemini`` extra) or a malformed
        ``ONMODEL_GEMINI_*`` setting is refused before the shot is recorded."""
        missing = _sdk_missing()
        if missing:
            raise ProviderError(missing, kind="config")
        from onmodel.providers.gemini.client import max_retries, timeout_seconds

        timeout_seconds()
        max_retries()

    def status(self) -> ProviderStatus:
        """Which variable holds the key (no call is made: a key is checked when used)."""
        missing = _sdk_missing()
        if missing:
            return ProviderStatus(False, missing)
        found = next((name for name in self.key_names() if is_set(name)), None)
        if found is None:
            return ProviderStatus(False, f"set {' or '.join(self.key_names())}")
        return ProviderStatus(True, f"key set ({found})")

    def api_route(self, n_input_images: int) -> str:
        return ROUTE

    def param_problems(self, params: Mapping[str, Any], capability: ModelCapability) -> list[str]:
        problems = [*super().param_problems(params, capability), *size_problems(params)]
        if not problems:
            size_class = _image_size_problem(capability, image_config(params))
            problems.extend([size_class] if size_class else [])
        seed = params.get("seed")
        if seed is not None and not (
            isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**31
        ):
            problems.append(f"seed must be a whole number from 0 to 2^31-1, not {seed!r}")
        return problems

    def attached(self, request: GenerationRequest) -> tuple[InputImage, ...]:
        return images_for_turn(request)

    def estimate_max_cost(self, request: GenerationRequest, prices: PriceTable) -> Decimal | None:
        """Priced at the square of the request's size class: Gemini bills an image by its
        class (1K, 2K, 4K), whatever its ratio, so ``size`` alone would misprice 2K and 4K.
        The earlier turns the request resends (its history) are paid input again: each a
        picture and a prompt, counted as they are."""
        resent = request.history
        sized = {**request.params, "size": estimate_size(request.params)}
        counted = replace(
            request,
            params=sized,
            inputs=(*images_for_turn(request), *(turn.output for turn in resent)),
            prompt=request.prompt + "".join(turn.prompt for turn in resent),
        )
        return super().estimate_max_cost(counted, prices)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Send one chat turn; every failure is a :class:`ProviderError`."""
        from google.genai import types

        from onmodel.providers.gemini.answer import read_answer
        from onmodel.providers.gemini.client import make_client
        from onmodel.providers.gemini.errors import map_error

        config, sent = self._config(request)
        images = images_for_turn(request)
        parts: list[types.PartUnionDict] = [
            types.Part.model_validate(part) for part in message_parts(request, images)
        ]
        history = [types.Content.model_validate(turn) for turn in history_contents(request)]
        if images:
            sent["images"] = sent_images(images)
        try:
            chat = make_client().chats.create(
                model=request.model,
                config=types.GenerateContentConfig.model_validate(config),
                history=list(history),
            )
            response = chat.send_message(parts)
        except Exception as exc:  # the SDK's errors and its transport's, all mapped
            raise map_error(exc) from exc
        return read_answer(response, sent)

    def _config(self, request: GenerationRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        """``GenerateContentConfig`` for the request, and the record of what was sent."""
        image = image_config(request.params)
        config: dict[str, Any] = {"response_modalities": ["TEXT", "IMAGE"]}
        if image:
            config["image_config"] = image
        seed = request.params.get("seed")
        if seed is not None:
            config["seed"] = seed  # the SDK's GenerateContentConfig.seed: a repeatable draw
        sent: dict[str, Any] = {
            "model": request.model,
            "api_version": API_VERSION,
            **image,
            "response_modalities": ["TEXT", "IMAGE"],
            "conversation_turns": request.conversation_turns(),
            "conversation_cast": request.conversation_cast(),
        }
        if request.params.get("size") is not None:
            sent["size"] = request.params["size"]
        if seed is not None:
            sent["seed"] = seed
        return config, sent


def _image_size_problem(cap: ModelCapability | None, image: Mapping[str, str]) -> str | None:
    """A size class the model does not draw: the table's sizes say which classes each model
    has."""
    from onmodel.capabilities import parse_size

    asked = image.get("image_size")
    if cap is None or asked is None:
        return None
    classes = {image_size_of(*dims) for dims in map(parse_size, cap.sizes) if dims is not None}
    if classes and asked not in classes:
        return f"{cap.name} draws only {', '.join(sorted(classes))} images, not image_size {asked}"
    return None


def _sdk_missing() -> str | None:
    """Why the SDK cannot be used (it is an optional extra), found without importing it."""
    from importlib.util import find_spec

    try:
        found = find_spec("google.genai")
    except ModuleNotFoundError:
        found = None
    if found is None:
        return "the gemini provider needs Google's SDK: pip install 'onmodel[gemini]'"
    return None
