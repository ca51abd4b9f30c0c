"""Which session is current: per user, in the data folder, never in the shared database.

Kept in ``state.json`` rather than a table so that a database shared through
``ONMODEL_DATABASE_URL`` does not share one person's "current session" with everyone.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class CurrentSession:
    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file

    def slug(self) -> str | None:
        value = self._read().get("current_session")
        return value if isinstance(value, str) and value else None

    def set(self, slug: str) -> None:
        self._write({"current_session": slug})

    def renamed(self, old: str, new: str) -> None:
        """A session's slug changed: if it was the current one, the current one follows it."""
        if self.slug() == old:
            self.set(new)

    def forget(self, slug: str) -> None:
        """The session is hidden: if it was the current one, there is no current one now."""
        if self.slug() == slug:
            self._write({"current_session": None})

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, values: dict[str, Any]) -> None:
        """Replace the state file whole; each writer has its own temporary file, so commands
        run at once never move each other's half-written file (the last one's choice wins)."""
        state = {**self._read(), **values}
        target = self.state_file
        fd, name = tempfile.mkstemp(prefix=".state-", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(state, indent=2))
            os.replace(name, target)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
