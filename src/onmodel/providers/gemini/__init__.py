"""The ``gemini`` provider plugin: Google's Gemini image models (``pip install 'onmodel[gemini]'``).

Light on purpose: it is imported to read this package's ``models.yaml`` and ``prices.yaml``
and to list providers, so the SDK is imported only when a request is sent.
"""

from onmodel.providers.gemini.provider import GeminiProvider

__all__ = ["GeminiProvider"]
