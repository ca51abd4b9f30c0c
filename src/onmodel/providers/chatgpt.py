"""The ``chatgpt`` provider: messages to paste into the ChatGPT app, for people who pay for
ChatGPT rather than for the API.

Nothing is called and nothing is spent. The studio renders the primer (``primer.j2``) into
``request.instructions`` and the shot (``chatgpt_shot.j2``) into ``request.prompt``; this
provider only decides which of them the user has to paste. The primer is needed once per
conversation, so it is returned only when there is no conversation to continue
(``previous_response_id`` is None), with the anchor to attach to it. The finished image comes
back later through ``attach``, not from here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from onmodel.composer import CHATGPT_SHOT_TEMPLATE
from onmodel.providers.base import (
    GenerationRequest,
    InputImage,
    ManualResult,
    ParentTurn,
    Provider,
    attachment_name,
)

__all__ = ["ChatGPTProvider"]


class ChatGPTProvider(Provider):
    """Returns the messages to paste, in order: primer (first turn only), then the shot."""

    name = "chatgpt"
    keeps_conversation = True
    billed = False  # the user pays ChatGPT, not the API: nothing is billed per image
    manual = True
    offline = True
    shot_template = CHATGPT_SHOT_TEMPLATE

    def conversation(
        self, *, instructions: str | None, parent: ParentTurn, started: Callable[[], bool]
    ) -> dict[str, Any]:
        """The primer is pasted once, before the session's first shot."""
        return {"instructions": None if started() else instructions}

    def attached(self, request: GenerationRequest) -> tuple[InputImage, ...]:
        """The anchors the user attaches: everyone's with the primer, then those of the
        members the chat has not seen yet (the parent is already in the chat)."""
        anchors = [item for item in request.inputs if item.role == "anchor"]
        if _primer(request):
            return tuple(anchors)
        return tuple(item for item in anchors if request.new_to_conversation(item))

    def generate(self, request: GenerationRequest) -> ManualResult:
        """The messages, and how many there are (recorded, so later shots of the conversation
        are numbered after them).

        The first message of a conversation carries the anchors of everyone the shot shows;
        a later one, the anchors of the members the chat has not seen yet (the turn where
        each first appears). With several files attached, the shot's message ends by saying
        which file is whom, by the names the studio saves them under."""
        primer = _primer(request)
        anchors = list(self.attached(request))
        prompt = request.prompt
        if len(request.cast) > 1 and anchors:
            prompt = f"{prompt}\n\n{_which_file(request, anchors)}"
        messages = [primer, prompt] if primer else [prompt]
        return ManualResult(
            messages=messages,
            sent_params={
                "route": "manual",
                "messages": len(messages),
                "conversation_cast": request.conversation_cast(),
            },
            attach=tuple(anchors),
        )


def _primer(request: GenerationRequest) -> str | None:
    """The primer to paste first, when this shot starts the conversation."""
    return request.instructions if request.previous_response_id is None else None


def _which_file(request: GenerationRequest, anchors: list[InputImage]) -> str:
    """``Attached: mia-anchor.png is Mia; max-anchor.png is Max (creature).``"""
    members = {member.id: member for member in request.cast}
    parts = []
    for item in anchors:
        member = members.get(item.member_id) if item.member_id is not None else None
        if member is None:
            continue
        what = member.name if member.kind == "character" else f"{member.name} ({member.kind})"
        parts.append(f"{attachment_name(item, request.cast, member.slug)} is {what}")
    return f"Attached: {'; '.join(parts)}." if parts else ""
