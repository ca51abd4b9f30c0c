"""The ``flux`` provider: Black Forest Labs' FLUX.2 REST API (submit, poll, download).

Only the provider class is imported here, and it imports no HTTP client until a request is
sent, so listing providers or reading this package's ``models.yaml``/``prices.yaml`` stays
cheap.
"""

from onmodel.providers.flux.provider import FluxProvider

__all__ = ["FluxProvider"]
