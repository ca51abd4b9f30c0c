"""The provider registry: names users type, mapped to the classes that serve them.

Imports are lazy so that ``onmodel --help`` never pays for the openai SDK.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

from onmodel.errors import UsageError
from onmodel.providers.base import Provider


def _preview() -> Provider:
    from onmodel.providers.preview import PreviewProvider

    return PreviewProvider()


def _openai_images() -> Provider:
    from onmodel.providers.openai_images import OpenAIImagesProvider

    return OpenAIImagesProvider()


def _openai_responses() -> Provider:
    from onmodel.providers.openai_responses import OpenAIResponsesProvider

    return OpenAIResponsesProvider()


def _chatgpt() -> Provider:
    from onmodel.providers.chatgpt import ChatGPTProvider

    return ChatGPTProvider()


FACTORIES: dict[str, Callable[[], Provider]] = {
    "preview": _preview,
    "openai-images": _openai_images,
    "openai-responses": _openai_responses,
    "chatgpt": _chatgpt,
}

# The user pays ChatGPT, not the API, for the chatgpt route: nothing is billed per image.
FREE_PROVIDERS = frozenset({"preview", "chatgpt"})


def is_manual(name: str) -> bool:
    """True for providers whose shots wait, pending, for the user to ``attach`` the picture."""
    return name in MANUAL_PROVIDERS


MANUAL_PROVIDERS = frozenset({"chatgpt"})


def provider_names() -> list[str]:
    return sorted(FACTORIES)


def default_provider_name() -> str:
    """The real API once a key is configured, the offline preview until then."""
    if os.environ.get("OPENAI_API_KEY") and "openai-images" in FACTORIES:
        return "openai-images"
    return "preview"


def get_provider(name: str) -> Provider:
    try:
        factory = FACTORIES[name]
    except KeyError:
        known = ", ".join(provider_names())
        raise UsageError(f"unknown provider {name!r}; choose one of: {known}") from None
    return factory()


def warm_up_in_background(names: Iterable[str]) -> threading.Thread:
    """Load these providers and let each build its client, on a thread of their own.

    A batch's first requests all start at once, and each would wait for the SDK to load, for
    its client to be built (most of it reading the system's certificates, which frees the
    interpreter for other threads) and for the modules the SDK loads on first use. Done while
    the batch is still being planned, much of that is over before the first request is due
    (with a client ready in advance, a 200-shot batch's first round ends about 0.08 s sooner).
    Failures are left to the first real request, which records and reports them.
    """
    chosen = sorted(set(names))

    def warm_up() -> None:
        for name in chosen:
            try:
                provider = get_provider(name)
                getattr(provider, "warm_up", lambda: None)()
            except Exception:  # the real request meets it again, and records it
                continue

    thread = threading.Thread(target=warm_up, name="onmodel-warm-up", daemon=True)
    thread.start()
    return thread
