"""What one Gemini turn sends: the chat history rebuilt from earlier turns, and this turn's
parts (images first, in the order given, then the prompt).

Gemini keeps no conversation on the server: a chat is its history, sent again in full with
every message (``client.chats.create(history=...)``). onmodel keeps that history in its own
records: each turn's prompt, its picture, and what the model said with it (its text, and the
``thought_signature`` Gemini 3 models attach to their parts and require back on the next turn,
kept in the turn's ``returned["parts"]``).

Only plain JSON-able data is built here (``{"inline_data": {...}}``, ``{"text": ...}``); the
SDK validates it into its ``Content``/``Part`` types, so this module needs no SDK import.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from onmodel.providers.base import GenerationRequest, InputImage, PastTurn
from onmodel.providers.inputs import read_input

__all__ = ["history_contents", "images_for_turn", "message_parts", "part_record"]


def images_for_turn(request: GenerationRequest) -> tuple[InputImage, ...]:
    """What this turn attaches: every input, except the parent when the history ends with it.

    The anchors (and views, and references) go with every turn: Gemini keeps nothing between
    calls, only the last few turns are resent, and the anchors are the strongest hold a
    turn has on who the character is. The parent is the last history turn's picture when the
    shot continues the chat, so attaching it again would pay for the same image twice.
    """
    last = request.history[-1].image_id if request.history else None
    return tuple(
        item
        for item in request.inputs
        if not (item.role == "parent" and last is not None and item.image_id == last)
    )


def _inline(data: bytes, mime: str) -> dict[str, Any]:
    return {"inline_data": {"data": data, "mime_type": mime}}


def message_parts(request: GenerationRequest, images: Sequence[InputImage]) -> list[dict[str, Any]]:
    """The new user message: the images as inline parts in order, then the prompt."""
    parts = [_inline(read_input(item), item.mime) for item in images]
    parts.append({"text": request.prompt})
    return parts


def part_record(
    *, text: str | None, image: bool, thought_signature: bytes | None
) -> dict[str, Any]:
    """How a part of the model's answer is kept in ``returned["parts"]`` (JSON: the
    signature as base64; the picture itself is the image onmodel stored)."""
    record: dict[str, Any] = {"image": True} if image else {"text": text or ""}
    if thought_signature:
        record["thought_signature"] = base64.b64encode(thought_signature).decode("ascii")
    return record


def _model_parts(turn: PastTurn) -> list[dict[str, Any]]:
    """The model's answer in a past turn: its parts as recorded, with the turn's stored
    picture where the image was; a turn recorded without parts (made elsewhere) is its
    picture alone."""
    recorded = turn.returned.get("parts")
    kept = (
        [each for each in recorded if isinstance(each, Mapping)]
        if isinstance(recorded, list)
        else []
    )
    if not any(each.get("image") for each in kept):
        kept = [*kept, {"image": True}]
    parts: list[dict[str, Any]] = []
    for each in kept:
        part: dict[str, Any] = (
            _inline(read_input(turn.output), turn.output.mime)
            if each.get("image")
            else {"text": str(each.get("text", ""))}
        )
        signature = each.get("thought_signature")
        if isinstance(signature, str) and signature:
            part["thought_signature"] = base64.b64decode(signature)
        parts.append(part)
    return parts


def history_contents(request: GenerationRequest) -> list[dict[str, Any]]:
    """The chat history: for each past turn, the user's prompt and the model's answer."""
    contents: list[dict[str, Any]] = []
    for turn in request.history:
        contents.append({"role": "user", "parts": [{"text": turn.prompt}]})
        contents.append({"role": "model", "parts": _model_parts(turn)})
    return contents
