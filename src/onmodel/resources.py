"""Find the packaged ``templates/`` and ``migrations/`` folders.

In a wheel they are copied into the package (``onmodel/templates``); in an editable install
or a source checkout they live at the repository root, two levels above ``src/onmodel``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"onmodel is installed without its {name}/ folder")


@cache
def templates_dir() -> Path:
    return _resource_dir("templates")


@cache
def migrations_dir() -> Path:
    return _resource_dir("migrations")
