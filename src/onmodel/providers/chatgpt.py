"""The ``chatgpt`` provider: messages to paste into the ChatGPT app, for people who pay for
ChatGPT rather than for the API.

Nothing is called and nothing is spent. The studio renders the primer (``primer.j2``) into
``request.instructions`` and the shot (``chatgpt_shot.j2``) into ``request.prompt``; this
provider only decides which of them the user has to paste. The primer is needed once per
conversation, so it is returned only when there is no conversation to continue
(``previous_response_id`` is None). The finished image comes back later through an import,
not from here.
"""

from __future__ import annotations

from onmodel.providers.base import GenerationRequest, ManualResult

__all__ = ["ChatGPTProvider"]


class ChatGPTProvider:
    """Returns the messages to paste, in order: primer (first turn only), then the shot."""

    name = "chatgpt"

    def generate(self, request: GenerationRequest) -> ManualResult:
        messages: list[str] = []
        if request.previous_response_id is None and request.instructions:
            messages.append(request.instructions)
        messages.append(request.prompt)
        return ManualResult(messages=messages, sent_params={"route": "manual"})
