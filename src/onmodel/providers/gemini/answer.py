"""Reads a ``GenerateContentResponse``: the picture, what the model said with it, what the
next turn needs back, and the usage in onmodel's shape; or the reason there is no picture.

Usage is converted so the token price table prices it like OpenAI's: input tokens split by
modality (``prompt_tokens_details``), output tokens split into image and text, with thinking
tokens (``thoughts_token_count``) counted as text output, because Google bills them at the
output rate. The raw ``usage_metadata`` is kept in ``returned`` as well.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from onmodel.providers.base import GenerationResult, ProviderError
from onmodel.providers.gemini.errors import SAFETY_REASONS, blocked_error, no_image_error
from onmodel.providers.gemini.history import part_record
from onmodel.providers.inputs import decode_image

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["read_answer", "usage_of"]

_FLAGGED = frozenset({"MEDIUM", "HIGH"})


def _name(value: object) -> str:
    """An SDK enum's name (or the string an unknown value arrived as)."""
    return str(getattr(value, "value", value) or "")


def _by_modality(details: list[types.ModalityTokenCount] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for each in details or ():
        key = _name(each.modality).lower()
        counts[key] = counts.get(key, 0) + (each.token_count or 0)
    return counts


def usage_of(response: types.GenerateContentResponse) -> dict[str, Any] | None:
    """onmodel's usage shape from ``usage_metadata``; None when the answer had none.

    Input tokens the details do not account for (an answer without ``prompt_tokens_details``)
    count as text, which both listed models price like image input.
    """
    meta = response.usage_metadata
    if meta is None:
        return None
    prompt = meta.prompt_token_count or 0
    inputs = _by_modality(meta.prompt_tokens_details)
    image_in = inputs.get("image", 0)
    outputs = _by_modality(meta.candidates_tokens_details)
    candidates = meta.candidates_token_count or 0
    image_out = outputs.get("image", 0)
    thoughts = meta.thoughts_token_count or 0
    text_out = candidates - image_out + thoughts
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"text_tokens": prompt - image_in, "image_tokens": image_in},
        "output_tokens": candidates + thoughts,
        "output_tokens_details": {"text_tokens": text_out, "image_tokens": image_out},
        "total_tokens": meta.total_token_count,
    }


def _categories(ratings: list[types.SafetyRating] | None) -> list[str]:
    """The categories rated blocked, else probable (MEDIUM or HIGH), as the API names them."""
    rated = list(ratings or ())
    blocked = [_name(each.category) for each in rated if each.blocked]
    flagged = blocked or [
        _name(each.category) for each in rated if _name(each.probability) in _FLAGGED
    ]
    return sorted(set(flagged))


def read_answer(response: types.GenerateContentResponse, sent: dict[str, Any]) -> GenerationResult:
    """The first image part's picture, or a :class:`ProviderError` saying why there is none."""
    usage = usage_of(response)
    rid = response.response_id
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise blocked_error(
            _name(feedback.block_reason),
            _categories(feedback.safety_ratings),
            usage,
            rid,
            prompt=True,
        )
    if not response.candidates:
        raise no_image_error("no candidate", "", usage, rid)
    candidate = response.candidates[0]
    finish = _name(candidate.finish_reason)
    parts = [
        part
        for part in (candidate.content.parts if candidate.content else None) or ()
        if not part.thought
    ]
    text = "\n".join(part.text for part in parts if part.text)
    image = next((part for part in parts if part.inline_data and part.inline_data.data), None)
    if image is None:
        if finish in SAFETY_REASONS:
            raise blocked_error(
                finish, _categories(candidate.safety_ratings), usage, rid, prompt=False
            )
        raise no_image_error(finish or "no finish reason", text, usage, rid)
    assert image.inline_data is not None and image.inline_data.data is not None
    try:
        data, fmt = decode_image(
            base64.b64encode(image.inline_data.data).decode("ascii"),
            source="the image Gemini returned",
        )
    except ProviderError as exc:
        exc.usage, exc.response_id = usage, rid
        raise
    returned: dict[str, Any] = {
        "text": text,
        "parts": [
            part_record(
                text=part.text, image=part is image, thought_signature=part.thought_signature
            )
            for part in parts
            if part is image or part.text
        ],
        "finish_reason": finish,
        "model_version": response.model_version,
        "usage_metadata": response.usage_metadata.model_dump(mode="json", exclude_none=True)
        if response.usage_metadata is not None
        else None,
    }
    return GenerationResult(
        data=data,
        format=fmt,
        sent_params=sent,
        gen_id=rid,
        response_id=rid,
        usage=usage,
        returned=returned,
    )
