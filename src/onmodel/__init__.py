"""onmodel: keep an AI-generated character on model across a whole series of images.

Library use mirrors the CLI::

    from onmodel import Studio

    studio = Studio.open()
    mia = studio.create_character("Mia", prompt="a cheerful girl with orange hair")
    session = studio.start_session(mia, title="Mia's week")
    crying = session.shot(expression="crying")
    print(crying.parent.kind, crying.path)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ModelSheet", "OnmodelError", "ShotRequest", "Studio", "__version__"]

if TYPE_CHECKING:
    from onmodel.errors import OnmodelError
    from onmodel.sheet import ModelSheet, ShotRequest
    from onmodel.studio import Studio


def __getattr__(name: str) -> Any:
    """Lazy exports keep ``import onmodel`` (and so ``onmodel --help``) light."""
    if name == "Studio":
        from onmodel.studio import Studio

        return Studio
    if name in ("ModelSheet", "ShotRequest"):
        from onmodel import sheet

        return getattr(sheet, name)
    if name == "OnmodelError":
        from onmodel.errors import OnmodelError

        return OnmodelError
    raise AttributeError(name)
