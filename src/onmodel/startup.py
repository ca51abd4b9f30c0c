"""The command line's one piece of start-up tuning: a collector that waits longer between runs.

Before a command does any work it loads the openai SDK, SQLAlchemy, pydantic and the models
built on them: some 130,000 objects that live as long as the process. With the interpreter's
default threshold (a collection every 700 allocations) the collector walks them again and
again while they are being made, and frees nothing: 13-30 ms of every command, measured by
``benchmarks/startup.py``. A threshold of 100,000 young objects removes that cost as well as
pausing the collector did, and needs no call from the rest of onmodel: collection still runs,
so a long batch or server keeps its memory bounded. Only the CLI's entry point calls this;
library users keep their own collector settings.
"""

from __future__ import annotations

import gc

CLI_THRESHOLDS = (100_000, 50, 100)
"""Young objects between collections, then how many young and middle collections before the
next older one; the middle and old values are the interpreter's defaults scaled alike."""


def tune_collector() -> None:
    """Called once, first thing, by the CLI's entry point."""
    gc.set_threshold(*CLI_THRESHOLDS)
