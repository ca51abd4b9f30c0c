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
from onmodel.providers.base import GenerationRequest, ManualResult, ParentTurn, Provider

__all__ = ["ChatGPTProvider"]


class ChatGPTProvider(Provider):
    """Returns the messages to paste, in order: primer (first turn only), then the shot."""

    name = "chatgpt"
    billed = False  # the user pays ChatGPT, not the API: nothing is billed per image
    manual = True
    offline = True
    shot_template = CHATGPT_SHOT_TEMPLATE

    def conversation(
        self, *, instructions: str | None, parent: ParentTurn, started: Callable[[], bool]
    ) -> dict[str, Any]:
        """The primer is pasted once, before the session's first shot."""
        return {"instructions": None if started() else instructions}

    def generate(self, request: GenerationRequest) -> ManualResult:
        """The messages, and how many there are (recorded, so later shots of the conversation
        are numbered after them)."""
        primer = request.instructions if request.previous_response_id is None else None
        messages = [primer, request.prompt] if primer else [request.prompt]
        anchor = next((item for item in request.inputs if item.role == "anchor"), None)
        return ManualResult(
            messages=messages,
            sent_params={"route": "manual", "messages": len(messages)},
            attach=anchor if primer else None,
        )
