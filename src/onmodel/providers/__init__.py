"""The provider registry: names users type, mapped to the classes that serve them.

Imports are lazy so that ``onmodel --help`` never pays for the openai SDK.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from onmodel.errors import UsageError
from onmodel.providers.base import Provider


def _preview() -> Provider:
    from onmodel.providers.preview import PreviewProvider

    return PreviewProvider()


FACTORIES: dict[str, Callable[[], Provider]] = {
    "preview": _preview,
}

FREE_PROVIDERS = frozenset({"preview"})


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
