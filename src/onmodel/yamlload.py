"""PyYAML's safe loader, in C where PyYAML was built with libyaml (its wheels are).

The capability and price tables are read on every command that plans a shot and a shot list
on every batch command; the pure-Python parser took 50 ms for the two tables alone, the C one
takes a tenth of that. Both build the same data, raise the same errors with line and column,
and keep the marks the shot-list loader uses for line numbers.
"""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` through :data:`SafeLoader`."""
    return yaml.load(text, Loader=SafeLoader)
