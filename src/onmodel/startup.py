"""Start-up without the cyclic garbage collector, for the command line.

Before a command does any work it loads the openai SDK, SQLAlchemy, pydantic and the models
built on them: some 130,000 objects that live as long as the process. While they are being
created the collector runs again and again over all of them and frees nothing (for ``batch
run``: about 300 young and 2 full passes, 0.15 s of a 1.1 s start-up). So the CLI pauses it
while it starts; work that runs for long (a batch's loop, the web server) calls
:func:`start_up_finished` first, which freezes what start-up made, so the collector never walks
those objects again, and turns collection back on, so memory stays bounded. Commands that end
soon simply end. Library users are not affected: nothing changes unless the CLI paused it.
"""

from __future__ import annotations

import gc

_paused = False


def pause_collection() -> None:
    """Called once, first thing, by the CLI's entry point."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def start_up_finished() -> None:
    """Freeze what start-up created and collect again from here on (once; no-op otherwise)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
