"""The commands of issue 13 that ``cli/app.py`` and ``cli/characters.py`` register, for the
tests that run them in-process until those files do (then the fixture changes nothing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def curation_commands() -> Iterator[None]:
    """The new commands, registered as the report asks ``cli/app.py`` and
    ``cli/characters.py`` to register them (a no-op once they are): the original lists are
    put back after this module."""
    from onmodel.cli import app as cli_app
    from onmodel.cli import characters, costs, curation, images

    top = {
        "images": images.images,
        "star": curation.star,
        "rate": curation.rate,
        "note": curation.note,
        "tag": curation.tag,
        "hide": curation.hide,
        "delete": curation.hide,
        "unhide": curation.unhide,
        "purge": curation.purge,
        "cost": costs.cost,
    }
    nested = {
        "rename": curation.character_rename,
        "hide": curation.character_hide,
        "delete": curation.character_hide,
        "unhide": curation.character_unhide,
        "anchor": curation.character_anchor,
        "sheet": curation.character_sheet,
    }
    saved = [
        (typer_app, list(typer_app.registered_commands))
        for typer_app in (
            cli_app.app,
            characters.app,
        )
    ]
    for typer_app, wanted in ((cli_app.app, top), (characters.app, nested)):
        have = {c.name: c for c in typer_app.registered_commands}
        for name, function in wanted.items():
            if name in have and have[name].callback is not function:
                typer_app.registered_commands.remove(have[name])  # cost: account's, until then
            if name not in have or have[name].callback is not function:
                typer_app.command(name)(function)
    yield
    for typer_app, commands in saved:
        typer_app.registered_commands[:] = commands
