"""Consistency checks as rows: written pending, finished once, read a page of images at a time.

Writing a check also touches its image's ``updated_at`` (through ``writes.change_time``), so a
page that polls its session for changes sees a new score as it sees a new image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from sqlalchemy import Connection, Engine, select

from onmodel.store.models import ImageCheckRow, ImageRow, utcnow
from onmodel.store.queries import ID_CHUNK
from onmodel.store.records import CheckRecord
from onmodel.store.rows import insert_row, update_row
from onmodel.store.writes import change_time

_check = ImageCheckRow.__table__  # type: ignore[attr-defined]
_image = ImageRow.__table__  # type: ignore[attr-defined]


def insert_pending_check(engine: Engine, values: Mapping[str, Any]) -> int:
    """The pending check, written before a paid checker is asked."""
    with engine.begin() as conn:
        _touch_image(conn, values["image_id"])
        return insert_row(
            conn, ImageCheckRow, {**values, "status": "pending", "created_at": utcnow()}
        )


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
    """Each image's newest finished check (of any checker), by image id: what a badge shows."""
    latest: dict[int, CheckRecord] = {}
    for image_id, records in checks_of(engine, image_ids).items():
        done = [r for r in records if r.status in ("succeeded", "failed")]
        if done:
            latest[image_id] = done[-1]
    return latest


def _touch_image(conn: Connection, image_id: int | None) -> None:
    if image_id is None:
        return
    session_id = conn.execute(select(_image.c.session_id).where(_image.c.id == image_id)).scalar()
    update_row(conn, ImageRow, image_id, {"updated_at": change_time(conn, [session_id])})


def _columns() -> list[Any]:
    """The check table's columns in :class:`CheckRecord`'s field order."""
    return [_check.c[f.name] for f in fields(CheckRecord)]
