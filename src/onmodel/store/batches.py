"""What the database knows about batches and their shots: the queries the batch runner and
``batch status`` share.

Image rows are the truth. A batch is known by its name in its session: a shot of it is done
when a row with its key, made by a batch of that name in that session, succeeded (whichever
run or ``retry`` made it), and otherwise its latest such row says what happened last. A list
with another name is another batch: the same shot there is made anew. The batch row only
remembers what the list was, where its shots branch from, the session slug its keys were made
with, and how runs went.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from onmodel.status import ImageStatus
from onmodel.store.database import transaction
from onmodel.store.models import BatchRow, ImageRow, utcnow
from onmodel.store.records import BatchRecord, record_from
from onmodel.store.writes import change_time

_CHUNK = 500  # stays under SQLite's bound-parameter limit on any build

INTERRUPTED_MESSAGE = "the batch run stopped before this shot finished"


def interrupted_mark(now: datetime, message: str = INTERRUPTED_MESSAGE) -> dict[str, Any]:
    """The values that mark a pending row ``interrupted``: nobody is making it any more."""
    return {
        "status": ImageStatus.INTERRUPTED,
        "error_type": "interrupted",
        "error_message": message,
        "finished_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True)
class KeyRecord:
    """The rows of one shot key: the first success, and the latest attempt; ``done_picked``
    says whether the success is its retake group's pick (so a run re-picks only what changed)."""

    done_id: int | None
    latest_id: int
    latest_status: str
    latest_error: str | None
    done_picked: bool = False


def key_records(
    engine: Engine,
    session_id: int,
    keys: Iterable[str],
    *,
    batch_ids: Collection[int] | None = None,
) -> dict[str, KeyRecord]:
    """Look up many keys at once (in chunks), oldest rows first so "latest" is the last seen;
    with ``batch_ids`` (a batch's, see :func:`batch_ids_named`), only rows those batches made.

    Each chunk is found through ``ix_image_shot_key`` alone and rows of other sessions are
    dropped here: with ``session_id = ?`` in the query SQLite picks ``ix_image_session_id``
    instead and reads every row of the session for each chunk (100,000 at 100k images), where
    the key index reads only the rows asked for (``tests/test_session_paging.py`` checks the
    plan). A key is a digest that names its session, so other sessions' rows hardly occur.
    """
    wanted = list(dict.fromkeys(keys))
    found: dict[str, KeyRecord] = {}
    image = ImageRow.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            rows = conn.execute(
                sa_select(
                    image.c.id,
                    image.c.shot_key,
                    image.c.session_id,
                    image.c.status,
                    image.c.error_message,
                    image.c.batch_id,
                    image.c.picked_at,
                )
                .where(image.c.shot_key.in_(wanted[start : start + _CHUNK]))
                .order_by(image.c.id)
            )
            for row in rows:
                if row.session_id != session_id:
                    continue
                if batch_ids is not None and row.batch_id not in batch_ids:
                    continue
                before = found.get(row.shot_key)
                done_id = before.done_id if before is not None else None
                picked = before.done_picked if before is not None else False
                if done_id is None and row.status == ImageStatus.SUCCEEDED:
                    done_id, picked = row.id, row.picked_at is not None
                found[row.shot_key] = KeyRecord(
                    done_id, row.id, row.status, row.error_message, picked
                )
    return found


def interrupt_pending(
    engine: Engine,
    *,
    session_id: int,
    batch_id: int | None = None,
    keep_owners: Collection[str] = (),
    owner: str | None = None,
) -> int:
    """Mark abandoned ``pending`` batch rows ``interrupted``; returns how many.

    Only called while holding the session's batch lock, when no other run can own them: they
    are rows a killed run left behind (or, with ``batch_id``, this run's own in-flight shots
    as it gives up on them). Rows of ``keep_owners``, live processes outside any run (a
    ``retry`` of a batch shot), are left to finish. With ``owner``, only that process's rows:
    a worker of a shared batch gives up on its own requests, never another machine's.
    """
    with engine.begin() as conn:
        now = change_time(conn, [session_id])
        statement = (
            update(ImageRow)
            .where(col(ImageRow.session_id) == session_id)
            .where(col(ImageRow.status) == ImageStatus.PENDING)
            .where(col(ImageRow.shot_key).is_not(None))
            .values(**interrupted_mark(now))
        )
        if batch_id is not None:
            statement = statement.where(col(ImageRow.batch_id) == batch_id)
        if owner is not None:
            statement = statement.where(col(ImageRow.owner) == owner)
        if keep_owners:
            owners = col(ImageRow.owner)
            statement = statement.where(or_(owners.is_(None), owners.not_in(list(keep_owners))))
        return int(conn.execute(statement).rowcount or 0)


def find_batch(engine: Engine, session_id: int, name: str) -> BatchRecord | None:
    with transaction(engine) as db:
        row = db.exec(
            select(BatchRow)
            .where(BatchRow.session_id == session_id)
            .where(BatchRow.name == name)
            .order_by(col(BatchRow.id).desc())
        ).first()
        return record_from(BatchRecord, row) if row is not None else None


def batch_ids_named(engine: Engine, session_id: int, name: str) -> set[int]:
    """The ids of the session's batches called ``name``: one batch, whose shots they made."""
    query = select(BatchRow.id).where(BatchRow.session_id == session_id, BatchRow.name == name)
    with transaction(engine) as db:
        return {batch_id for batch_id in db.exec(query).all() if batch_id is not None}


def get_batch(engine: Engine, batch_id: int) -> BatchRecord | None:
    with transaction(engine) as db:
        row = db.get(BatchRow, batch_id)
        return record_from(BatchRecord, row) if row is not None else None


def all_batches(engine: Engine) -> list[BatchRecord]:
    with transaction(engine) as db:
        rows = db.exec(select(BatchRow).order_by(col(BatchRow.id))).all()
        return [record_from(BatchRecord, row) for row in rows]


def save_batch(engine: Engine, batch_id: int | None, **values: Any) -> BatchRecord:
    """Create (``batch_id`` None) or update a batch row; JSON fields are replaced whole."""
    with transaction(engine) as db:
        row = BatchRow(**values) if batch_id is None else db.get(BatchRow, batch_id)
        assert row is not None
        if batch_id is not None:
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        db.add(row)
        db.flush()
        return record_from(BatchRecord, row)


@dataclass(frozen=True)
class Failure:
    """What a failed row recorded: why (type and message) and any usage it was billed."""

    error_type: str | None
    message: str | None
    usage: dict[str, Any] | None


def image_failure(engine: Engine, image_id: int) -> Failure:
    with transaction(engine) as db:
        row = db.get(ImageRow, image_id)
        if row is None:
            return Failure(None, None, None)
        return Failure(row.error_type, row.error_message, row.usage)
