"""Every write the studio makes, each one transaction, behind the store.

Unique names are settled by the database itself: two processes that pick the same free name
at once get a :class:`DuplicateError` (or, for generated session names, the next free one),
never an IntegrityError.

Every write to an image row sets its ``updated_at`` to a :func:`change_time`, so that a page
can ask a session for what changed since it last looked (``store.queries``); so does a change
of an image's tags, which live in a table of their own.

Every image is recorded with the model sheet its character has at that moment
(``sheet_version_id``), read in the transaction that writes the row, so an edit of the sheet
never changes what an earlier image says it was made with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from onmodel.errors import DuplicateError
from onmodel.status import ImageStatus
from onmodel.store.database import transaction
from onmodel.store.models import (
    CharacterRow,
    ImageCastRow,
    ImageReferenceRow,
    ImageRow,
    ImageTagRow,
    SessionRow,
    SheetVersionRow,
    utcnow,
)
from onmodel.store.records import SessionRecord, SheetVersionRecord, record_from
from onmodel.store.rows import insert_row, insert_rows, update_row

SLUG_ATTEMPTS = 20


def insert_character(engine: Engine, values: Mapping[str, Any]) -> int:
    """A new character's row and its sheet's version 1; its slug must still be free when it
    is written."""
    with transaction(engine) as db:
        row = CharacterRow(**values)
        db.add(row)
        _flush_unique(db, f"a character named {row.slug!r} already exists")
        assert row.id is not None
        db.add(SheetVersionRow(character_id=row.id, number=1, sheet=row.sheet))
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
        sheet = SheetVersionRow(character_id=row.id, number=1, sheet=row.sheet)
        db.add(sheet)
        db.flush()
        now = utcnow()  # the anchor is in no session: no order to keep (see change_time)
        image = ImageRow(
            **anchor,
            character_id=row.id,
            sheet_version_id=sheet.id,
            kind="import",
            status=ImageStatus.SUCCEEDED,
            created_at=now,
            finished_at=now,
            updated_at=now,
        )
        db.add(image)
        db.flush()
        assert image.id is not None
        db.add(
            ImageCastRow(
                image_id=image.id, character_id=row.id, position=0, sheet_version_id=sheet.id
            )
        )
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
    engine: Engine,
    values: Mapping[str, Any],
    references: Sequence[Mapping[str, Any]],
    cast: Sequence[int] = (),
) -> int:
    """The pending row, the images sent with it and who is in it, in order, in one
    transaction; the row names its character's current model sheet, and each cast member's
    row its own, read in the same transaction. ``cast`` empty: the image's character alone."""
    with engine.begin() as conn:
        now = change_time(conn, [values.get("session_id")])
        lead = values["character_id"]
        members = list(dict.fromkeys(cast or [lead]))
        sheets = {
            each: _current_sheet_version(conn, each) for each in dict.fromkeys([lead, *members])
        }
        image_id = insert_row(
            conn,
            ImageRow,
            {
                **values,
                "status": ImageStatus.PENDING,
                "created_at": now,
                "updated_at": now,
                "sheet_version_id": sheets[lead],
            },
        )
        insert_rows(
            conn,
            ImageReferenceRow,
            [{**reference, "image_id": image_id} for reference in references],
        )
        insert_rows(
            conn,
            ImageCastRow,
            [
                {
                    "image_id": image_id,
                    "character_id": member,
                    "position": position,
                    "sheet_version_id": sheets[member],
                }
                for position, member in enumerate(members)
            ],
        )
    return image_id


def complete_image(engine: Engine, image_id: int, values: Mapping[str, Any]) -> None:
    """Mark a row succeeded and, in the same transaction, make it its character's anchor or
    its session's new head (batch shots are siblings: they move no head)."""
    with engine.begin() as conn:
        row = conn.execute(
            select(
                ImageRow.kind, ImageRow.character_id, ImageRow.session_id, ImageRow.batch_id
            ).where(ImageRow.id == image_id)
        ).one()
        now = change_time(conn, [row.session_id])
        update_row(
            conn,
            ImageRow,
            image_id,
            {**values, "status": ImageStatus.SUCCEEDED, "finished_at": now, "updated_at": now},
        )
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
    """Set ``values`` on an image row (a failure, a manual shot's sent parameters, the
    illustrator's star, rating or note), and its ``updated_at``."""
    with engine.begin() as conn:
        session_id = conn.execute(
            select(ImageRow.session_id).where(ImageRow.id == image_id)
        ).scalar()
        update_row(
            conn, ImageRow, image_id, {**values, "updated_at": change_time(conn, [session_id])}
        )


def set_images_hidden(engine: Engine, image_ids: Sequence[int], hidden_at: datetime | None) -> None:
    """Hide the images (since ``hidden_at``; one hidden already keeps its time) or, with None,
    show them again, in one transaction."""
    images = ImageRow.__table__  # type: ignore[attr-defined]
    changed = images.c.id.in_(image_ids)
    if hidden_at is not None:
        changed &= images.c.hidden_at.is_(None)
    with engine.begin() as conn:
        sessions = conn.execute(select(images.c.session_id).where(changed).distinct()).scalars()
        now = change_time(conn, list(sessions))
        conn.execute(update(images).where(changed).values(hidden_at=hidden_at, updated_at=now))


def update_character(engine: Engine, character_id: int, values: Mapping[str, Any]) -> None:
    """Set ``values`` on a character (a new name or slug, its anchor, hidden or shown) and its
    ``updated_at``; a slug another character has is a :class:`DuplicateError`."""
    with transaction(engine) as db:
        row = db.get(CharacterRow, character_id)
        assert row is not None
        for name, value in {**values, "updated_at": utcnow()}.items():
            setattr(row, name, value)
        db.add(row)
        _flush_unique(db, f"a character named {values.get('slug')!r} already exists")


def update_session(engine: Engine, session_id: int, values: Mapping[str, Any]) -> None:
    """Set ``values`` on a session (its title or slug, provider, model, defaults, head, hidden
    or shown) and its ``updated_at``; a slug another session has is a :class:`DuplicateError`."""
    with transaction(engine) as db:
        row = db.get(SessionRow, session_id)
        assert row is not None
        for name, value in {**values, "updated_at": utcnow()}.items():
            setattr(row, name, value)
        db.add(row)
        _flush_unique(db, f"a session named {values.get('slug')!r} already exists")


def add_sheet_version(
    engine: Engine, character_id: int, sheet: Mapping[str, Any]
) -> SheetVersionRecord:
    """The character's next sheet version, which becomes its sheet, in one transaction; two
    edits at once cannot take the same number (the second is a :class:`DuplicateError`)."""
    with transaction(engine) as db:
        latest = db.exec(
            select(func.max(SheetVersionRow.number)).where(
                SheetVersionRow.character_id == character_id
            )
        ).one()
        version = SheetVersionRow(
            character_id=character_id, number=(latest or 0) + 1, sheet=dict(sheet)
        )
        db.add(version)
        _flush_unique(db, "the model sheet was changed meanwhile; look at it again and retry")
        character = db.get(CharacterRow, character_id)
        assert character is not None
        character.sheet = dict(sheet)
        character.updated_at = version.created_at
        db.add(character)
        return record_from(SheetVersionRecord, version)


def _current_sheet_version(conn: Connection, character_id: int) -> int | None:
    """The id of the character's newest sheet version (through ``uq_sheet_version_number``)."""
    versions = SheetVersionRow.__table__  # type: ignore[attr-defined]
    query = (
        select(versions.c.id)
        .where(versions.c.character_id == character_id)
        .order_by(versions.c.number.desc())
        .limit(1)
    )
    found: int | None = conn.execute(query).scalar()
    return found


def change_tags(engine: Engine, image_id: int, tags: Sequence[str], *, remove: bool) -> None:
    """Add the tags an image does not have yet, or remove them, and mark the image changed."""
    table = ImageTagRow.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        session_id = conn.execute(
            select(ImageRow.session_id).where(ImageRow.id == image_id)
        ).scalar()
        now = change_time(conn, [session_id])
        mine = table.c.image_id == image_id
        if remove:
            conn.execute(delete(table).where(mine, table.c.tag.in_(tags)))
        else:
            have = set(conn.execute(select(table.c.tag).where(mine)).scalars())
            new = [{"image_id": image_id, "tag": tag} for tag in tags if tag not in have]
            if new:
                conn.execute(insert(table), new)
        update_row(conn, ImageRow, image_id, {"updated_at": now})


def change_time(conn: Connection, session_ids: Iterable[int | None]) -> datetime:
    """The ``updated_at`` for image rows about to be written in these sessions, in ``conn``'s
    transaction: later than every change already committed in them.

    A poller asks a session for the images changed after the newest change it has seen
    (``store.queries.images_changed_since``); that misses nothing only if a change committed
    later never carries an earlier or equal time. The clock alone does not promise it: a time
    read before the write waits for its turn (behind another thread's or process's
    transaction) is older than the writes that commit first, two writes can read the same
    microsecond, and a clock can step back. So the sessions' rows are locked first, by
    writing them unchanged (SQLite's one write lock, or PostgreSQL's row locks, each held
    until commit, taken in id order), and the time is then now, or a microsecond after the
    latest change already in those sessions if that is later. Rows in no session (a
    character's anchor) are in no poll: they just get now.
    """
    ids = sorted({session_id for session_id in session_ids if session_id is not None})
    sessions = SessionRow.__table__  # type: ignore[attr-defined]
    images = ImageRow.__table__  # type: ignore[attr-defined]
    latest: list[datetime] = []
    for session_id in ids:
        conn.execute(
            update(sessions)
            .where(sessions.c.id == session_id)
            .values(updated_at=sessions.c.updated_at)
        )
        newest = conn.execute(
            select(func.max(images.c.updated_at)).where(images.c.session_id == session_id)
        ).scalar()
        if newest is not None:
            latest.append(newest + timedelta(microseconds=1))
    return max([utcnow(), *latest])


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


def pick_take(
    engine: Engine, pick_id: int, take_ids: Sequence[int], session_id: int | None
) -> None:
    """Mark ``pick_id`` the chosen take among ``take_ids`` (the others lose the mark) and, for a
    plain shot's takes (``session_id`` given), make it the session's head, in one transaction:
    a session never points at a take that is not its pick."""
    images = ImageRow.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        pick = conn.execute(
            select(ImageRow.session_id, ImageRow.response_id).where(ImageRow.id == pick_id)
        ).one()
        now = change_time(conn, [pick.session_id])
        others = [take_id for take_id in take_ids if take_id != pick_id]
        if others:
            conn.execute(
                update(images)
                .where(images.c.id.in_(others), images.c.picked_at.is_not(None))
                .values(picked_at=None, updated_at=now)
            )
        update_row(conn, ImageRow, pick_id, {"picked_at": now, "updated_at": now})
        if session_id is not None:
            head = {"head_image_id": pick_id, "last_response_id": pick.response_id}
            update_row(conn, SessionRow, session_id, {**head, "updated_at": now})
