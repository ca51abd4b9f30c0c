"""Shot lists: a whole series as one concurrent, resumable, budgeted batch.

Library use mirrors ``onmodel batch run``::

    from onmodel import Studio
    from onmodel.batch import run_batch, preview_batch

    studio = Studio.open()
    print(preview_batch(studio, "week.yaml").estimated_total)
    report = run_batch(studio, "week.yaml", concurrency=8, budget="5.00")
    print(report.summary())
"""

from __future__ import annotations

from onmodel.batch.expand import ExpandedShot, Expansion, SessionDefaults, expand, shot_key
from onmodel.batch.lock import BatchBusyError
from onmodel.batch.progress import (
    NullProgress,
    PlainProgress,
    Progress,
    RichProgress,
    Snapshot,
    make_progress,
)
from onmodel.batch.rate import RateLimiter
from onmodel.batch.runner import (
    BatchIncompleteError,
    BatchInterrupted,
    BatchPreview,
    BatchReport,
    BatchRunner,
    ShotStatus,
    preview_batch,
    run_batch,
)
from onmodel.batch.spec import (
    LoadedShotList,
    Problem,
    ShotList,
    ShotListError,
    json_schema,
    load_shot_list,
    parse_shot_list,
)
from onmodel.batch.status import BatchSummary, batch_status, list_batches

__all__ = [
    "BatchBusyError",
    "BatchIncompleteError",
    "BatchInterrupted",
    "BatchPreview",
    "BatchReport",
    "BatchRunner",
    "BatchSummary",
    "ExpandedShot",
    "Expansion",
    "LoadedShotList",
    "NullProgress",
    "PlainProgress",
    "Problem",
    "Progress",
    "RateLimiter",
    "RichProgress",
    "SessionDefaults",
    "ShotList",
    "ShotListError",
    "ShotStatus",
    "Snapshot",
    "batch_status",
    "expand",
    "json_schema",
    "list_batches",
    "load_shot_list",
    "make_progress",
    "parse_shot_list",
    "preview_batch",
    "run_batch",
    "shot_key",
]
