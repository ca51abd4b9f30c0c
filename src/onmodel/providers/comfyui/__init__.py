"""The ``comfyui`` provider: a local ComfyUI server running the user's own workflow.

Kept light: this package is imported to read its model table and to list providers, so
nothing here (nor in :mod:`.provider` at import time) loads an HTTP client.
"""

from onmodel.providers.comfyui.provider import ComfyUIProvider
from onmodel.providers.comfyui.workflow import EXAMPLES

__all__ = ["EXAMPLES", "ComfyUIProvider"]
