"""Every write the studio makes, each one transaction, behind the store.

Unique names are settled by the database itself: two processes that pick the same free name
at once get a :class:`DuplicateError` (or, for generated session names, the next free one),
never an IntegrityError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from onmodel.errors import DuplicateError
from onmodel.status import ImageStatus
from onmodel.store.database import transaction
from onmodel.store.models import CharacterRow, ImageReferenceRow, ImageRow, SessionRow, utcnow
from onmodel.store.records import SessionRecord, record_from
from onmodel.store.rows import insert_row, insert_rows, update_row

SLUG_ATTEMPTS = 20


def insert_character(engine: Engine, values: Mapping[str, Any]) -> int:
    """A new character's row; its slug must still be free when it is written."""
    with transaction(engine) as db:
        row = CharacterRow(**values)
        db.add(row)
        _flush_unique(db, f"a character named {row.slug!r} already exists")
        assert row.id is not None
        return row.id


def insert_imported_character(
    engine: Engine, character: Mapping[str, Any], anchor: Mapping[str, Any]
) -> int:
    """A character and the succeeded anchor it was imported with, in one transaction."""
    with transaction(engine) as db:
        row = CharacterRow(**character)
        db.add(row)
        _flush_unique(db, f"a character named {row.slug!r} already exists")
        assert row.id is not None
        image = ImageRow(
            **anchor,
            character_id=row.id,
            kind="import",
            status=ImageStatus.SUCCEEDED,
            finished_at=utcnow(),
        )
        db.add(image)
        db.flush()
        row.anchor_image_id = image.id
        db.add(row)
        return row.id


def insert_session(
    engine: Engine, base: str, *, taken_ok: bool, values: Mapping[str, Any]
) -> SessionRecord:
    """Insert under ``base`` or, when ``taken_ok`` (a generated name), the next free ``base-N``.

    Two processes can pick the same free slug at once; the unique index refuses the second,
    which then moves on to the next free one rather than failing.
    """
    for _ in range(SLUG_ATTEMPTS):
        with transaction(engine) as db:
            row = SessionRow(slug=_free_slug(db, base, taken_ok=taken_ok), **values)
            db.add(row)
            try:
                _flush_unique(db, f"a session named {base!r} already exists")
            except DuplicateError:
                if not taken_ok:
                    raise
                continue
            return record_from(SessionRecord, row)
    raise DuplicateError(f"could not find a free name for session {base!r}; try again")


def insert_pending_image(
    engine: Engine, values: Mapping[str, Any], references: Sequence[Mapping[str, Any]]
) -> int:
    """The pending row and the images sent with it, in order, in one transaction."""
    with engine.begin() as conn:
        image_id = insert_row(conn, ImageRow, {**values, "status": ImageStatus.PENDING})
        insert_rows(
            conn,
            ImageReferenceRow,
            [{**reference, "image_id": image_id} for reference in references],
        )
    return image_id


def complete_image(engine: Engine, image_id: int, values: Mapping[str, Any]) -> None:
    """Mark a row succeeded and, in the same transaction, make it its character's anchor or
    its session's new head (batch shots are siblings: they move no head)."""
    now = utcnow()
    with engine.begin() as conn:
        update_row(
            conn,
            ImageRow,
            image_id,
            {**values, "status": ImageStatus.SUCCEEDED, "finished_at": now},
        )
        row = conn.execute(
            select(
                ImageRow.kind, ImageRow.character_id, ImageRow.session_id, ImageRow.batch_id
            ).where(ImageRow.id == image_id)
        ).one()
        if row.kind == "anchor":
            update_row(
                conn,
                CharacterRow,
                row.character_id,
                {"anchor_image_id": image_id, "updated_at": now},
            )
        if row.session_id is not None and row.batch_id is None:
            head: dict[str, Any] = {"head_image_id": image_id, "updated_at": now}
            if values.get("response_id"):
                head["last_response_id"] = values["response_id"]
            update_row(conn, SessionRow, row.session_id, head)


def update_image(engine: Engine, image_id: int, values: Mapping[str, Any]) -> None:
    with engine.begin() as conn:
        update_row(conn, ImageRow, image_id, values)


def _flush_unique(db: Any, message: str) -> None:
    """Flush, turning a unique-constraint race lost to another process into a DuplicateError."""
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise DuplicateError(message) from None


def _free_slug(db: Any, base: str, *, taken_ok: bool) -> str:
    """``base``, or ``base-2``, ``base-3``... when generated; an explicit slug must be free."""
    candidate, n = base, 1
    while db.exec(select(SessionRow).where(SessionRow.slug == candidate)).first() is not None:
        if not taken_ok:
            raise DuplicateError(f"a session named {base!r} already exists")
        n += 1
        candidate = f"{base}-{n}"
    return candidate
