"""Opening the studio for a command, once, with the data directory the user chose."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onmodel.studio import Studio


def open_studio() -> Studio:
    """Imported lazily so that ``onmodel --help`` never loads SQLAlchemy or Pillow."""
    from onmodel.studio import Studio

    return Studio.open()
