"""Where onmodel keeps things on disk, decided in one place.

``ONMODEL_HOME`` moves everything (the tests use it for a throwaway directory; the demo keeps
its own folder unless given one);
``ONMODEL_DATABASE_URL`` points the records at any SQLAlchemy database while images stay on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from onmodel.settings import Settings


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def database_url(self) -> str:
        url = Settings.from_environment().database_url
        if url:
            return url
        return f"sqlite:///{self.home / 'onmodel.db'}"

    @property
    def blobs(self) -> Path:
        return self.home / "blobs"

    @property
    def thumbnails(self) -> Path:
        return self.home / "thumbnails"

    @property
    def templates(self) -> Path:
        """The user's own templates; they shadow the packaged ones of the same name."""
        return self.home / "templates"

    @property
    def models_file(self) -> Path:
        """User overrides of the model capability table."""
        return self.home / "models.yaml"

    @property
    def prices_file(self) -> Path:
        """User overrides of the price table."""
        return self.home / "prices.yaml"

    @property
    def state_file(self) -> Path:
        """Small per-user state such as the current session."""
        return self.home / "state.json"


def default_home() -> Path:
    env = Settings.from_environment().home
    if env:
        return Path(env).expanduser().resolve()
    from platformdirs import user_data_path

    return user_data_path("onmodel", appauthor=False)


def resolve_paths(home: Path | str | None = None) -> Paths:
    root = Path(home).expanduser().resolve() if home is not None else default_home()
    return Paths(home=root)
