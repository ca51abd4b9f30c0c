"""The ``comfyui`` provider: a local ComfyUI server running the user's own workflow.

Kept light: this package is imported to read its model table and to list providers, so
nothing here (nor in :mod:`.provider` at import time) loads an HTTP client.
"""

from pathlib import Path

from onmodel.providers.comfyui.provider import ComfyUIProvider

EXAMPLES = Path(__file__).parent / "workflows"
"""The example workflows shipped to start from (``anchor-sdxl.json``, ``ipadapter-sdxl.json``)."""

__all__ = ["EXAMPLES", "ComfyUIProvider"]
