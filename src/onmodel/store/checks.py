"""Consistency checks as rows: written pending, finished once, read a page of images at a time.

Writing a check also touches its image's ``updated_at`` (through ``writes.change_time``), so a
page that polls its session for changes sees a new score as it sees a new image.

A shot of several figures is checked per member: one check of it is a *round* of rows, one per
member (``character_id`` set), written together. What stands for the shot is its worst member
(:func:`worst`): it is on model only when every member is, and scores what its lowest member
scores. :func:`latest_checks` answers with that, as a :class:`ShotCheck` that also carries
every member's row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, select

from onmodel.store.models import ImageCastRow, ImageCheckRow, ImageRow, utcnow
from onmodel.store.queries import ID_CHUNK
from onmodel.store.records import CheckRecord
from onmodel.store.rows import insert_row, update_row
from onmodel.store.writes import change_time

_check = ImageCheckRow.__table__  # type: ignore[attr-defined]
_image = ImageRow.__table__  # type: ignore[attr-defined]
_cast = ImageCastRow.__table__  # type: ignore[attr-defined]
FINISHED = ("succeeded", "failed")
"""Check states that are an answer (pending and interrupted checks are not)."""


@dataclass(frozen=True)
class ShotCheck(CheckRecord):
    """A check of a shot of several: its worst member's row (see :func:`worst`), costing what
    the whole round cost, with every member's row in cast order in ``members``. Anything
    that reads a :class:`CheckRecord` (a badge, ``passed``, a retake's pick) reads the shot."""

    members: tuple[CheckRecord, ...] = ()


def insert_pending_checks(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """The pending checks of one round (one row, or one per member of a shot of several),
    written together before a paid checker is asked; their ids in order."""
    with engine.begin() as conn:
        _touch_image(conn, rows[0]["image_id"])
        now = utcnow()
        return [
            insert_row(conn, ImageCheckRow, {**values, "status": "pending", "created_at": now})
            for values in rows
        ]


def member_sheets(engine: Engine, image_id: int) -> list[tuple[int, int | None]]:
    """Who is in an image, in order, each with the model sheet version it was made with: what
    each member of a shot is checked against."""
    query = (
        select(_cast.c.character_id, _cast.c.sheet_version_id)
        .where(_cast.c.image_id == image_id)
        .order_by(_cast.c.position)
    )
    with engine.connect() as conn:
        return [(int(member), version) for member, version in conn.execute(query)]


def finish_check(engine: Engine, check_id: int, values: Mapping[str, Any]) -> None:
    """Record a check's outcome (``status`` among ``values``): succeeded, failed, interrupted."""
    with engine.begin() as conn:
        image_id = conn.execute(select(_check.c.image_id).where(_check.c.id == check_id)).scalar()
        _touch_image(conn, image_id)
        update_row(conn, ImageCheckRow, check_id, {**values, "finished_at": utcnow()})


def check_by_id(engine: Engine, check_id: int) -> CheckRecord:
    with engine.connect() as conn:
        row = conn.execute(select(*_columns()).where(_check.c.id == check_id)).one()
    return CheckRecord(*row)


def checks_of(engine: Engine, image_ids: Iterable[int]) -> dict[int, list[CheckRecord]]:
    """Every check of these images, oldest first, by image id: a query per chunk of ids,
    through ``ix_image_check_image_id``."""
    ids = sorted(set(image_ids))
    found: dict[int, list[CheckRecord]] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            query = (
                select(*_columns())
                .where(_check.c.image_id.in_(chunk))
                .order_by(_check.c.image_id, _check.c.id)
            )
            for row in conn.execute(query):
                record = CheckRecord(*row)
                found.setdefault(record.image_id, []).append(record)
    return found


def latest_checks(engine: Engine, image_ids: Iterable[int]) -> dict[int, CheckRecord]:
    """Each image's newest finished check (of any checker), by image id: what a badge shows.
    For a shot of several, its newest round as a :class:`ShotCheck` (its worst member)."""
    latest: dict[int, CheckRecord] = {}
    for image_id, records in checks_of(engine, image_ids).items():
        done = [r for r in records if r.status in FINISHED]
        if done:
            latest[image_id] = shot_check(newest_round(done))
    return latest


def newest_round(records: Sequence[CheckRecord]) -> list[CheckRecord]:
    """The newest check of one image among ``records`` (oldest first): a single row, or the
    round of member rows it belongs to (same checker, each member once, written together),
    in cast order."""
    newest = records[-1]
    if newest.character_id is None:
        return [newest]
    members: dict[int, CheckRecord] = {}
    for record in reversed(records):
        member = record.character_id
        if member is None or member in members or record.checker != newest.checker:
            break
        members[member] = record
    return sorted(members.values(), key=lambda record: record.id)


def worst(records: Sequence[CheckRecord]) -> CheckRecord:
    """The member a shot of several is judged by: one that drifted before one whose check
    failed (a drift is an answer: the shot is off model), either before the on-model ones;
    then the lowest score, then the first in cast order."""

    def rank(record: CheckRecord) -> tuple[int, bool, int]:
        order = {False: 0, None: 1, True: 2}[record.passed]
        # of those off model, a drifted trait first: no pass mark forgives it, so the shot
        # stays judged right when a shot list's mark changes (see batch.retakes.on_model)
        drifted = any(trait.get("verdict") == "drifted" for trait in record.traits)
        return order, not drifted, record.score if record.score is not None else -1

    return min(records, key=rank)


def shot_check(round_: Sequence[CheckRecord]) -> CheckRecord:
    """A round as one record: a single row as it is, several as a :class:`ShotCheck` whose
    cost is the round's (unknown when any member's is)."""
    if len(round_) == 1 and round_[0].character_id is None:
        return round_[0]
    costs = [record.cost_usd for record in round_]
    total = None if None in costs else str(sum((Decimal(c or 0) for c in costs), Decimal(0)))
    data = {f.name: getattr(worst(round_), f.name) for f in fields(CheckRecord)}
    return ShotCheck(**{**data, "cost_usd": total}, members=tuple(round_))


def _touch_image(conn: Connection, image_id: int | None) -> None:
    if image_id is None:
        return
    session_id = conn.execute(select(_image.c.session_id).where(_image.c.id == image_id)).scalar()
    update_row(conn, ImageRow, image_id, {"updated_at": change_time(conn, [session_id])})


def _columns() -> list[Any]:
    """The check table's columns in :class:`CheckRecord`'s field order."""
    return [_check.c[f.name] for f in fields(CheckRecord)]
