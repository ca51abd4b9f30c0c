"""What both OpenAI providers share: a client built on first use, warm-up, and every SDK
failure turned into a :class:`ProviderError` the studio records."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import openai

from onmodel.providers.base import GenerationRequest, GenerationResult, Provider, ProviderContext
from onmodel.providers.openai.client import make_client, warm_up_client
from onmodel.providers.openai.errors import map_error


class OpenAIProvider(Provider):
    """``client`` is for tests and embedding; by default one is built from the settings on
    first use (:func:`make_client`), so constructing the provider never needs a key."""

    resource: ClassVar[str]
    """The SDK resource the requests go through (``images``, ``responses``)."""
    key_env = "OPENAI_API_KEY"  # the SDK reads it itself; checked before a shot is recorded

    def __init__(
        self, client: openai.OpenAI | None = None, *, context: ProviderContext | None = None
    ) -> None:
        super().__init__(context)
        self._client = client

    def has_key(self) -> bool:
        """Asked of the settings the client is built from, so both see the same key."""
        return self.context.settings.has_openai_key

    def warm_up(self) -> None:
        """Build the shared client and load what its first request would load."""
        warm_up_client(self._client, self.resource, self.context.settings)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Send the request and return its image; every failure is a ProviderError."""
        try:
            if self._client is None:
                self._client = make_client(self.context.settings)
            return self.send(self._client, request)
        except openai.OpenAIError as exc:
            raise map_error(exc) from exc

    @abstractmethod
    def send(self, client: openai.OpenAI, request: GenerationRequest) -> GenerationResult:
        """One request through ``client``; SDK errors are left to :meth:`generate`."""
