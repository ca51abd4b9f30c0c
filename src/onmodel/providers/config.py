"""Reading a provider's own settings from the environment: seconds to wait, times to retry.

Every provider has a time-out and a retry count a user may change (``ONMODEL_OPENAI_TIMEOUT``,
``ONMODEL_FLUX_TIMEOUT``...); each is read here so a bad value gets the same one-line error,
recorded like any failed request (kind ``config``) rather than crashing a batch's thread.
"""

from __future__ import annotations

import math

from onmodel.providers.base import ProviderError
from onmodel.settings import setting


def seconds_setting(name: str, default: float, raw: str | None = None) -> float:
    """Seconds from the variable ``name`` (or ``raw``, already read), above 0; ``default`` when
    it is unset or empty."""
    text = setting(name) if raw is None else raw.strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or math.isinf(value):
        raise ProviderError(
            f"{name}={text!r} is not a number of seconds above 0 (e.g. {default:g})",
            kind="config",
        )
    return value


def count_setting(
    name: str, default: int, raw: str | None = None, *, most: int | None = None
) -> int:
    """A whole number from 0 (to ``most``) from the variable ``name`` (or ``raw``)."""
    text = setting(name) if raw is None else raw.strip()
    if not text:
        return default
    if not text.isdigit() or (most is not None and int(text) > most):
        upto = f" to {most}" if most is not None else " or more"
        raise ProviderError(
            f"{name}={text!r} is not a whole number from 0{upto} (default {default})",
            kind="config",
        )
    return int(text)
