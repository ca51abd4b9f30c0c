"""Pending rows whose process is gone: found, and marked ``interrupted`` so they can be retried.

A row is judged by its owner (``onmodel.owners``): stale once the process that recorded it has
ended. Rows recorded before the ``owner`` column existed (revision 0002) have none:

* a batch's row is judged as ``batch run`` judges it, stale unless its session's batch lock is
  held (only the holder can have requests in flight);
* any other row is stale. An older onmodel cannot open the upgraded database, so no process
  can still be recording such rows; one that was mid-request during the upgrade still finishes
  its row afterwards, which overwrites the mark.

Shots of manual providers (the ChatGPT app: ``Provider.manual``) stay pending by design until
``attach``: no process is making them, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, update
from sqlmodel import col, select

from onmodel.owners import forget_owner, is_owner_alive
from onmodel.status import ImageStatus
from onmodel.store.batches import interrupted_mark
from onmodel.store.models import ImageRow
from onmodel.store.writes import change_time

STALE_MESSAGE = "the process that made this request ended before it finished"
_CHUNK = 500  # stays under SQLite's bound-parameter limit on any build


@dataclass(frozen=True)
class StaleRow:
    """A pending row nobody is making any more."""

    image_id: int
    owner: str | None
    session_id: int | None
    batch_id: int | None


def find_stale(
    engine: Engine, home: Path, image_ids: Collection[int] | None = None
) -> list[StaleRow]:
    """Every stale pending row (or those among ``image_ids``), in id order.

    One query for the pending rows, then one liveness check per distinct owner (or, for rows
    without one, per batch session), however many rows each has.
    """
    from onmodel.providers import manual_provider_names  # the store asks; it names none

    query = (
        select(ImageRow.id, ImageRow.owner, ImageRow.session_id, ImageRow.batch_id)
        .where(col(ImageRow.status) == ImageStatus.PENDING)
        .where(col(ImageRow.provider).not_in(manual_provider_names()))
        .order_by(col(ImageRow.id))
    )
    if image_ids is not None:
        query = query.where(col(ImageRow.id).in_(list(image_ids)))
    with engine.connect() as conn:
        pending = [StaleRow(*row) for row in conn.execute(query)]
    verdicts: dict[tuple[str, object], bool] = {}
    stale: list[StaleRow] = []
    for row in pending:
        key = _judged_by(row)
        if key not in verdicts:
            verdicts[key] = _gone(home, key)
        if verdicts[key]:
            stale.append(row)
    return stale


def _judged_by(row: StaleRow) -> tuple[str, object]:
    if row.owner is not None:
        return ("owner", row.owner)
    if row.batch_id is not None and row.session_id is not None:
        return ("batch", row.session_id)
    return ("legacy", None)


def _gone(home: Path, key: tuple[str, object]) -> bool:
    kind, subject = key
    if kind == "owner":
        assert isinstance(subject, str)
        return not is_owner_alive(home, subject)
    if kind == "batch":
        assert isinstance(subject, int)
        from onmodel.batch.lock import is_locked  # rare (rows from before 0002): load it then

        return not is_locked(home, subject)
    return True


def live_owners(engine: Engine, home: Path, *, session_id: int) -> set[str]:
    """Owners of the session's pending rows whose process still runs.

    ``retry`` of a batch shot keeps the shot's key, so a ``batch run`` that starts meanwhile
    finds its pending row; this is what tells the run the shot is being made, not abandoned.
    """
    query = (
        select(ImageRow.owner)
        .distinct()
        .where(col(ImageRow.session_id) == session_id)
        .where(col(ImageRow.status) == ImageStatus.PENDING)
        .where(col(ImageRow.owner).is_not(None))
    )
    with engine.connect() as conn:
        owners = [owner for (owner,) in conn.execute(query)]
    return {owner for owner in owners if is_owner_alive(home, owner)}


def _mark_interrupted(engine: Engine, rows: Sequence[StaleRow]) -> None:
    """Only rows still pending: one that finished meanwhile was alive after all."""
    with engine.begin() as conn:
        now = change_time(conn, [row.session_id for row in rows])
        for chunk in _chunks([row.image_id for row in rows]):
            conn.execute(
                update(ImageRow)
                .where(col(ImageRow.id).in_(chunk))
                .where(col(ImageRow.status) == ImageStatus.PENDING)
                .values(**interrupted_mark(now, STALE_MESSAGE))
            )


def reconcile_stale(
    engine: Engine, home: Path, image_ids: Collection[int] | None = None
) -> list[int]:
    """Find stale pending rows, mark them interrupted, and forget their dead owners' locks.

    Returns the ids of the rows found stale (one that finished meanwhile keeps its outcome).
    ``Studio.retry`` calls it for the one row it was asked to retry; ``onmodel db check --fix``
    for all of them.
    """
    stale = find_stale(engine, home, image_ids)
    if not stale:
        return []
    _mark_interrupted(engine, stale)
    for owner in {row.owner for row in stale if row.owner is not None}:
        forget_owner(home, owner)
    return [row.image_id for row in stale]


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]
