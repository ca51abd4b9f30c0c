"""``batch status`` and ``batch list``: where a series stands, computed from the image rows.

Counts are never trusted from a cache: a run killed by SIGKILL cannot update anything, so the
state of each shot is read from its image rows (by key), and a batch still marked ``running``
whose session lock is free is reported as interrupted. A checked shot's takes are settled the
way a run settles them (``batch/retakes.py``), from the same rows and checks, so status shows
each take's score, the pick, and takes that are ``retake`` (made only if the ones before drift)
or ``not needed`` (an earlier take was on model); a batch with a shot whose check failed, or a
take not checked yet, is not completed, though every image is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onmodel.batch.expand import TakeOf
from onmodel.batch.retakes import NOT_NEEDED, RETAKE, Settlement, found_checks, settle
from onmodel.batch.shared import run_is_live
from onmodel.batch.spec import is_row_id
from onmodel.errors import NotFoundError, UsageError
from onmodel.status import ImageStatus
from onmodel.store.batches import (
    KeyRecord,
    all_batches,
    batch_ids_named,
    find_batch,
    get_batch,
    key_records,
)
from onmodel.store.records import BatchRecord

if TYPE_CHECKING:
    from onmodel.studio import Studio

STATES = ("done", "failed", "interrupted", "running", "new", RETAKE, NOT_NEEDED)


@dataclass(frozen=True)
class ShotLine:
    """One shot as ``status`` shows it."""

    number: int
    key: str
    label: str
    state: str
    image_id: int | None = None
    error: str | None = None
    line: int | None = None
    take: TakeOf | None = None
    picked: bool = False
    check: dict[str, Any] = field(default_factory=dict)  # its check and pick, once settled

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "key": self.key,
            "label": self.label,
            "state": self.state,
            "image_id": self.image_id,
            "error": self.error,
            "line": self.line,
            **self.check,
        }


@dataclass(frozen=True)
class BatchSummary:
    """A batch row with live counts."""

    id: int | None
    name: str
    session: str
    status: str
    counts: dict[str, int]
    source: str
    updated_at: datetime | None
    last_run: dict[str, Any]
    check_counts: dict[str, int] = field(default_factory=dict)  # Settlement.counts()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "session": self.session,
            "status": self.status,
            "total": self.total,
            "counts": self.counts,
            "source": self.source,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "last_run": self.last_run,
            "check_counts": self.check_counts,
        }


@dataclass(frozen=True)
class BatchStatus:
    summary: BatchSummary
    shots: list[ShotLine]

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary.to_dict(), "shots": [s.to_dict() for s in self.shots]}


def _state(record: KeyRecord | None, live: bool) -> tuple[str, int | None, str | None]:
    if record is None:
        return "new", None, None
    if record.done_id is not None:
        return "done", record.done_id, None
    if record.latest_status == ImageStatus.PENDING:
        return ("running" if live else "interrupted"), record.latest_id, None
    state = "failed" if record.latest_status == ImageStatus.FAILED else "interrupted"
    return state, record.latest_id, record.latest_error


def _settled(lines: list[ShotLine], settlement: Settlement) -> list[ShotLine]:
    """The lines with their retake states, checks and picks."""
    return [
        replace(line, state=settlement.state_of(line), check=settlement.shot_dict(line))
        for line in lines
    ]


def _counts(lines: list[ShotLine]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for line in lines:
        counts[line.state] = counts.get(line.state, 0) + 1
    return counts


def _row_status(
    studio: Studio, row: BatchRecord, counts: dict[str, int], settlement: Settlement
) -> str:
    live = row.session_id is not None and run_is_live(
        studio.engine, studio.paths.home, row.session_id
    )
    if row.status == "running" and not live:
        return "interrupted"
    finished = counts.get("done", 0) + counts.get(NOT_NEEDED, 0)
    answered = not settlement.to_check  # every take checked, if asked, by a check that answered
    if row.status != "running" and counts and finished == sum(counts.values()) and answered:
        return "completed"
    return row.status


def _summary(
    studio: Studio, row: BatchRecord, lines: list[ShotLine], settlement: Settlement
) -> BatchSummary:
    counts = _counts(lines)
    session = studio.session(row.session_id).slug if row.session_id is not None else "?"
    return BatchSummary(
        id=row.id,
        name=row.name,
        session=session,
        status=_row_status(studio, row, counts, settlement),
        counts=counts,
        source=row.source_path,
        updated_at=row.updated_at,
        last_run=dict(row.counters.get("last_run") or {}),
        check_counts=settlement.counts(),
    )


def _stored_lines(studio: Studio, row: BatchRecord) -> tuple[list[ShotLine], Settlement]:
    """The shots recorded with the batch at its last run, with their live state and checks
    (each stored as ``[key, label]``, and a checked one's take after them)."""
    stored = [item for item in row.spec.get("shots") or [] if len(item) >= 2]
    if row.session_id is None:
        return [], Settlement()
    live = run_is_live(studio.engine, studio.paths.home, row.session_id)
    batch_ids = batch_ids_named(studio.engine, row.session_id, row.name)
    records = key_records(
        studio.engine, row.session_id, (str(item[0]) for item in stored), batch_ids=batch_ids
    )
    lines = []
    for number, item in enumerate(stored, start=1):
        key = str(item[0])
        record = records.get(key)
        state, image_id, error = _state(record, live)
        take = TakeOf.from_dict(item[2]) if len(item) > 2 else None
        picked = record is not None and record.done_picked
        lines.append(
            ShotLine(number, key, str(item[1]), state, image_id, error, None, take, picked)
        )
    settlement = settle(
        lines, found_checks(studio.engine, lines), lambda line: line.state in ("new", "interrupted")
    )
    return _settled(lines, settlement), settlement


def batch_status(studio: Studio, target: str | Path, *, session: str | None = None) -> BatchStatus:
    """Status of a shot-list file (by its keys: exact even if it changed since it last ran),
    a batch id, or a batch name."""
    from onmodel.batch.runner import BatchRunner

    text = str(target)
    path = Path(text)
    if _is_file(path):
        runner = BatchRunner(studio, path, session=session, handle_signals=False)
        statuses, settlement = runner.shot_statuses()
        lines = [
            ShotLine(
                s.shot.number,
                s.key,
                s.shot.label,
                s.state,
                s.image_id,
                s.error,
                s.shot.line,
                s.take,
                s.picked,
                settlement.shot_dict(s),
            )
            for s in statuses
        ]
        row = find_batch(studio.engine, runner.session_id, runner.loaded.name)
        if row is None:
            summary = BatchSummary(
                id=None,
                name=runner.loaded.name,
                session=studio.session(runner.session_id).slug,
                status="not run",
                counts=_counts(lines),
                source=str(path.resolve()),
                updated_at=None,
                last_run={},
                check_counts=settlement.counts(),
            )
        else:
            summary = _summary(studio, row, lines, settlement)
        return BatchStatus(summary, lines)
    row = _find_row(studio, text)
    lines, settlement = _stored_lines(studio, row)
    return BatchStatus(_summary(studio, row, lines, settlement), lines)


def _is_file(path: Path) -> bool:
    """Whether ``path`` names a file; a name too long to be a path is a batch name."""
    try:
        return path.is_file()
    except OSError:
        return False


def _find_row(studio: Studio, text: str) -> BatchRecord:
    cleaned = text.strip().lstrip("#")
    if cleaned.isdigit():
        row = get_batch(studio.engine, int(cleaned)) if is_row_id(cleaned) else None
        if row is None:
            raise NotFoundError(f"no batch #{cleaned} (see: onmodel batch list)")
        return row
    matches = [r for r in all_batches(studio.engine) if r.name == text]
    if not matches:
        if text.endswith((".yaml", ".yml")):
            raise NotFoundError(f"no shot list at {text}")
        raise NotFoundError(f"no batch or shot list named {text!r} (see: onmodel batch list)")
    if len(matches) > 1:
        ids = ", ".join(f"#{r.id}" for r in matches)
        raise UsageError(f"{len(matches)} batches are named {text!r} ({ids}); give an id")
    return matches[0]


def list_batches(studio: Studio) -> list[BatchSummary]:
    summaries = []
    for row in all_batches(studio.engine):
        lines, settlement = _stored_lines(studio, row)
        summaries.append(_summary(studio, row, lines, settlement))
    return summaries
