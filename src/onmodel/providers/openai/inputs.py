"""Request options shared by the OpenAI providers: input fidelity and the image options each
route takes. (The images sent and returned are checked in ``providers/inputs.py``, as every
provider's are.) Nothing here needs the SDK."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from onmodel.capabilities import ModelCapability

__all__ = ["image_options", "input_fidelity_for"]


def input_fidelity_for(cap: ModelCapability | None, params: Mapping[str, Any]) -> str | None:
    """``input_fidelity`` to send with input images, or None to leave it out.

    An explicit value in ``params`` is honoured when the model takes it; otherwise ``high`` is
    chosen whenever the model offers it, because matching the reference face is the whole
    point of onmodel (the API's default is ``low``). Models without the parameter (gpt-image-2
    and later: "omit this parameter") never get it.
    """
    allowed = cap.input_fidelity if cap is not None else ()
    asked = params.get("input_fidelity")
    if asked is not None:
        return asked if isinstance(asked, str) and asked in allowed else None
    return "high" if "high" in allowed else None


def image_options(params: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The image options in ``params`` that are set, in a stable order, for the given route."""
    return {name: params[name] for name in names if params.get(name) is not None}
