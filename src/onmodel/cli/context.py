"""Opening the studio for a command, once, with the data directory the user chose."""

from __future__ import annotations

import atexit
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onmodel.studio import Studio


def open_studio() -> Studio:
    """Imported lazily so that ``onmodel --help`` never loads SQLAlchemy or Pillow.

    Closed at exit, so the database's connections end cleanly (SQLite folds its write-ahead
    log back into the file) even though the command exits without interpreter teardown.
    """
    from onmodel.studio import Studio

    studio = Studio.open()
    atexit.register(studio.close)
    return studio
