"""Reads that are one SQL statement instead of a loop of them, kept behind the store.

Written with SQLAlchemy Core, and only with SQL that SQLite and PostgreSQL both run
(``WITH RECURSIVE``), so callers never see a dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, Engine, func, union
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from onmodel.limits import MAX_ID
from onmodel.status import ImageStatus
from onmodel.store.database import transaction
from onmodel.store.models import (
    CharacterRow,
    ImageCastRow,
    ImageReferenceRow,
    ImageRow,
    SessionRow,
    SheetVersionRow,
)
from onmodel.store.records import (
    CharacterRecord,
    ImageRecord,
    ReferenceRecord,
    SessionRecord,
    SheetVersionRecord,
    record_from,
)

# Ids per ``IN (...)``: SQLite allows 32,766 bound values (older builds 999).
ID_CHUNK = 500


def reference_rows(db: Session, image_ids: Sequence[int]) -> dict[int, list[ImageReferenceRow]]:
    """The references of many images, by image id, in position order: a page of a long
    series reads them in a few queries instead of one per image."""
    found: dict[int, list[ImageReferenceRow]] = {image_id: [] for image_id in image_ids}
    for start in range(0, len(image_ids), ID_CHUNK):
        chunk = image_ids[start : start + ID_CHUNK]
        rows = db.scalars(
            select(ImageReferenceRow)
            .where(col(ImageReferenceRow.image_id).in_(chunk))
            .order_by(col(ImageReferenceRow.image_id), col(ImageReferenceRow.position))
        ).all()
        for row in rows:
            found[row.image_id].append(row)
    return found


# ------------------------------------------------------------------ records for the studio


def character(engine: Engine, ref: str | int) -> CharacterRecord | None:
    """By id, slug or (for text that is neither) name, then by slug or name in any case
    (``rin`` finds Rin after its slug was renamed); an id no row can have finds nothing."""
    with transaction(engine) as db:
        row = _by_ref(db, CharacterRow, ref)
        if row is None and isinstance(ref, str):
            row = db.exec(select(CharacterRow).where(CharacterRow.name == ref)).first()
        if row is None and isinstance(ref, str):
            folded = ref.lower()
            query = select(CharacterRow).where(
                (func.lower(CharacterRow.slug) == folded)
                | (func.lower(CharacterRow.name) == folded)
            )
            row = db.exec(query.order_by(col(CharacterRow.id))).first()
        return record_from(CharacterRecord, row) if row is not None else None


def characters(engine: Engine, *, hidden: bool = False) -> list[CharacterRecord]:
    """The shown characters or, ``hidden``, the hidden ones, in id order."""
    shown = col(CharacterRow.hidden_at).is_(None)
    query = select(CharacterRow).where(~shown if hidden else shown)
    with transaction(engine) as db:
        rows = db.exec(query.order_by(col(CharacterRow.id))).all()
        return [record_from(CharacterRecord, row) for row in rows]


def characters_by_id(engine: Engine, ids: Iterable[int]) -> list[CharacterRecord]:
    """These characters, hidden or not, one query per chunk of ids."""
    wanted = sorted(set(ids))
    found: list[CharacterRecord] = []
    with transaction(engine) as db:
        for start in range(0, len(wanted), ID_CHUNK):
            query = select(CharacterRow).where(
                col(CharacterRow.id).in_(wanted[start : start + ID_CHUNK])
            )
            found.extend(record_from(CharacterRecord, row) for row in db.exec(query).all())
    return found


def character_slug_taken(engine: Engine, slug: str) -> bool:
    with transaction(engine) as db:
        return db.exec(select(CharacterRow.id).where(CharacterRow.slug == slug)).first() is not None


def session(engine: Engine, ref: str | int) -> SessionRecord | None:
    with transaction(engine) as db:
        row = _by_ref(db, SessionRow, ref)
        return record_from(SessionRecord, row) if row is not None else None


def sessions(
    engine: Engine, character_id: int | None = None, *, hidden: bool = False
) -> list[SessionRecord]:
    """The shown sessions (of one character, or of all), or with ``hidden`` the others: those
    hidden themselves or with their character; in id order."""
    sessions = SessionRow.__table__  # type: ignore[attr-defined]
    shown = sessions.c.hidden_at.is_(None) & sessions.c.character_id.not_in(hidden_characters())
    query = select(SessionRow).where(~shown if hidden else shown).order_by(col(SessionRow.id))
    if character_id is not None:
        query = query.where(SessionRow.character_id == character_id)
    with transaction(engine) as db:
        return [record_from(SessionRecord, row) for row in db.exec(query).all()]


def sessions_headed_by(engine: Engine, image_ids: Sequence[int]) -> list[SessionRecord]:
    """The sessions whose head is one of ``image_ids``."""
    found: list[SessionRecord] = []
    with transaction(engine) as db:
        for start in range(0, len(image_ids), ID_CHUNK):
            chunk = image_ids[start : start + ID_CHUNK]
            rows = db.exec(select(SessionRow).where(col(SessionRow.head_image_id).in_(chunk)))
            found.extend(record_from(SessionRecord, row) for row in rows)
    return found


def hidden_characters() -> Any:
    """Hidden characters' ids, as a subquery."""
    characters = CharacterRow.__table__  # type: ignore[attr-defined]
    return sa_select(characters.c.id).where(characters.c.hidden_at.is_not(None))


def hidden_sessions() -> Any:
    """The ids of sessions hidden themselves or with their character, as a subquery."""
    sessions = SessionRow.__table__  # type: ignore[attr-defined]
    return sa_select(sessions.c.id).where(
        sessions.c.hidden_at.is_not(None) | sessions.c.character_id.in_(hidden_characters())
    )


def image(engine: Engine, image_id: int) -> ImageRecord | None:
    with transaction(engine) as db:
        row = db.get(ImageRow, image_id)
        return record_from(ImageRecord, row) if row is not None else None


def children(engine: Engine, image_id: int, limit: int | None = None) -> list[ImageRecord]:
    """The image's children, oldest first; the first ``limit`` of them, if given (the anchor
    of a long series may have thousands)."""
    query = select(ImageRow).where(ImageRow.parent_id == image_id).order_by(col(ImageRow.id))
    if limit is not None:
        query = query.limit(limit)
    with transaction(engine) as db:
        return [record_from(ImageRecord, row) for row in db.exec(query).all()]


def finished_views(engine: Engine, anchor_id: int) -> list[ImageRecord]:
    """The shown, succeeded turnaround views drawn from the anchor, oldest first: read among
    the anchor's children through ``ix_image_parent_id`` with the kind filtered in the
    database, so an anchor under a batch of thousands of shots hands none of them out."""
    query = (
        select(ImageRow)
        .where(
            ImageRow.parent_id == anchor_id,
            ImageRow.kind == "view",
            ImageRow.status == ImageStatus.SUCCEEDED,
            col(ImageRow.hidden_at).is_(None),
        )
        .order_by(col(ImageRow.id))
    )
    with transaction(engine) as db:
        return [record_from(ImageRecord, row) for row in db.exec(query).all()]


def session_images(engine: Engine, session_id: int) -> list[ImageRecord]:
    """The session's shown images, in id order."""
    query = (
        select(ImageRow)
        .where(ImageRow.session_id == session_id, col(ImageRow.hidden_at).is_(None))
        .order_by(col(ImageRow.id))
    )
    with transaction(engine) as db:
        return [record_from(ImageRecord, row) for row in db.exec(query).all()]


def references(engine: Engine, image_id: int) -> list[ReferenceRecord]:
    return references_of(engine, [image_id])[image_id]


def sheet_version(engine: Engine, version_id: int) -> SheetVersionRecord | None:
    with transaction(engine) as db:
        row = db.get(SheetVersionRow, version_id)
        return record_from(SheetVersionRecord, row) if row is not None else None


def sheet_versions(engine: Engine, character_id: int) -> list[SheetVersionRecord]:
    """Every sheet the character has had, oldest first."""
    query = (
        select(SheetVersionRow)
        .where(SheetVersionRow.character_id == character_id)
        .order_by(col(SheetVersionRow.number))
    )
    with transaction(engine) as db:
        return [record_from(SheetVersionRecord, row) for row in db.exec(query).all()]


def sheet_version_image_counts(engine: Engine, character_id: int) -> dict[int, int]:
    """How many pictures showing the character each sheet version made, in one ``GROUP BY``
    over who is in each picture (``image_cast``): a shot of several counts for each member
    it shows, with the sheet it drew that member from."""
    table = ImageCastRow.__table__  # type: ignore[attr-defined]
    query = (
        select(table.c.sheet_version_id, func.count())
        .where(table.c.character_id == character_id, table.c.sheet_version_id.is_not(None))
        .group_by(table.c.sheet_version_id)
    )
    with engine.connect() as conn:
        return {version_id: count for version_id, count in conn.execute(query)}


def image_id_for_shot_key(engine: Engine, shot_key: str) -> int | None:
    with transaction(engine) as db:
        return db.exec(select(ImageRow.id).where(ImageRow.shot_key == shot_key)).first()


def _by_ref(db: Any, table: type[Any], ref: str | int) -> Any:
    """Rows are named by slug or by numeric id; an id no row can have finds nothing."""
    if isinstance(ref, int) or (ref.isascii() and ref.isdigit()):
        key = int(ref)
        return db.get(table, key) if 0 < key <= MAX_ID else None
    return db.exec(select(table).where(table.slug == ref)).first()


def references_of(engine: Engine, image_ids: Sequence[int]) -> dict[int, list[ReferenceRecord]]:
    """The references of many images, by image id (see :func:`reference_rows`)."""
    with transaction(engine) as db:
        found = reference_rows(db, image_ids)
        return {
            image_id: [record_from(ReferenceRecord, row) for row in rows]
            for image_id, rows in found.items()
        }


def stored_files(engine: Engine, batch_size: int) -> Iterator[tuple[str, str]]:
    """``(sha256, format)`` of every file a row refers to (as its image or as a request's
    input), each once, streamed ``batch_size`` rows at a time."""
    query: CompoundSelect[str, str] = union(
        select(ImageRow.sha256, ImageRow.format)
        .where(col(ImageRow.sha256).is_not(None))
        .where(col(ImageRow.format).is_not(None)),
        select(ImageReferenceRow.sha256, ImageReferenceRow.format),
    )
    with engine.connect() as conn:
        yield from conn.execution_options(yield_per=batch_size).execute(query)


def digest_users(
    engine: Engine, digests: Sequence[str]
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """For each digest, the images stored as it and the images whose request sent it."""
    images: dict[str, list[int]] = {d: [] for d in digests}
    inputs: dict[str, list[int]] = {d: [] for d in digests}
    with engine.connect() as conn:
        for start in range(0, len(digests), ID_CHUNK):
            chunk = digests[start : start + ID_CHUNK]
            stored = select(ImageRow.sha256, ImageRow.id).where(col(ImageRow.sha256).in_(chunk))
            for sha256, image_id in conn.execute(stored):
                images[sha256].append(image_id)
            sent = select(ImageReferenceRow.sha256, ImageReferenceRow.image_id).where(
                col(ImageReferenceRow.sha256).in_(chunk)
            )
            for sha256, image_id in conn.execute(sent):
                inputs[sha256].append(image_id)
    return images, inputs


# ------------------------------------------------------------------ long sessions
#
# A series of 100,000 images is counted with COUNT, listed a page at a time by id (keyset:
# each page starts from the last id seen, never from an OFFSET that reads every row before
# it) and polled through a stamp read from the indexes alone.


def session_image_counts(
    engine: Engine, session_ids: Sequence[int] | None = None
) -> dict[int, int]:
    """How many images each session holds (its anchor is the character's, not counted): one
    ``COUNT ... GROUP BY`` over ``ix_image_session_id`` per chunk of ids, no row read.

    Every id asked for is in the answer (0 for a session without images); with no ids, every
    session that has images.
    """
    table = ImageRow.__table__  # type: ignore[attr-defined]
    query = select(table.c.session_id, func.count()).group_by(table.c.session_id)
    counts: dict[int, int] = {}
    with engine.connect() as conn:
        if session_ids is None:
            rows = conn.execute(query.where(table.c.session_id.is_not(None))).all()
            return {session_id: count for session_id, count in rows}
        for start in range(0, len(session_ids), ID_CHUNK):
            chunk = session_ids[start : start + ID_CHUNK]
            for session_id, count in conn.execute(query.where(table.c.session_id.in_(chunk))):
                counts[session_id] = count
    return {session_id: counts.get(session_id, 0) for session_id in session_ids}


def hidden_image_counts(engine: Engine, session_ids: Sequence[int]) -> dict[int, int]:
    """How many hidden images each session holds (0 for none), read from
    ``ix_image_hidden_session_id``, which holds the hidden images alone: with
    :func:`session_image_counts`, a session's shown images are counted without reading a row."""
    table = ImageRow.__table__  # type: ignore[attr-defined]
    counts = dict.fromkeys(session_ids, 0)
    with engine.connect() as conn:
        for start in range(0, len(session_ids), ID_CHUNK):
            query = (
                select(table.c.session_id, func.count())
                .where(
                    table.c.hidden_at.is_not(None),
                    table.c.session_id.in_(session_ids[start : start + ID_CHUNK]),
                )
                .group_by(table.c.session_id)
            )
            counts.update((session_id, count) for session_id, count in conn.execute(query))
    return counts


def session_status_counts(engine: Engine, session_id: int) -> dict[str, int]:
    """How many of a session's shown images are in each status, by the stored status (an
    :class:`ImageStatus` value; one a newer onmodel wrote is counted too), in one
    ``GROUP BY``. Statuses no image has are left out."""
    table = ImageRow.__table__  # type: ignore[attr-defined]
    query = (
        select(table.c.status, func.count())
        .where(table.c.session_id == session_id, table.c.hidden_at.is_(None))
        .group_by(table.c.status)
    )
    with engine.connect() as conn:
        return {status: count for status, count in conn.execute(query)}


def session_images_page(
    engine: Engine,
    session_id: int,
    *,
    after_id: int | None,
    limit: int,
    newest_first: bool,
) -> list[ImageRecord]:
    """Up to ``limit`` of a session's shown images after ``after_id`` (the last id of the
    previous page; None: from the start), in id order or, ``newest_first``, in reverse.

    Keyset paging: a page costs the same at the start of a 100,000-image session as at its
    end, read from ``ix_image_session_id`` in id order without a sort. Images added while
    pages are read come last in id order, so an oldest-first walk ends with them.
    """
    image = ImageRow.__table__  # type: ignore[attr-defined]
    query = sa_select(*record_columns()).where(
        image.c.session_id == session_id, image.c.hidden_at.is_(None)
    )
    if after_id is not None:
        query = query.where(image.c.id < after_id if newest_first else image.c.id > after_id)
    query = query.order_by(image.c.id.desc() if newest_first else image.c.id).limit(limit)
    with engine.connect() as conn:
        return [ImageRecord(*row) for row in conn.execute(query)]


def record_columns() -> list[Any]:
    """The image columns an :class:`ImageRecord` holds, in its field order: pages of a long
    series are read with Core, as the ORM's instances cost several times the query."""
    image = ImageRow.__table__  # type: ignore[attr-defined]
    return [image.c[field.name] for field in fields(ImageRecord)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def session_stamp(engine: Engine, session_id: int) -> str:
    """A short text that changes whenever the session changes: an image added or changed
    (its count, newest id and newest ``updated_at``) or the session row itself (its head,
    its ``updated_at``). A page polls it and re-reads only when it differs; it is also where
    the next :func:`images_changed_since` starts (:func:`stamp_change_time`).

    Each part is read from an index (``ix_image_session_id`` for the count and newest id,
    ``ix_image_session_id_updated_at`` for the newest change), never from the rows: a few
    milliseconds at 100,000 images, the count being the only part that walks the index.
    An unknown session's stamp is the empty string.
    """
    image = ImageRow.__table__  # type: ignore[attr-defined]
    session = SessionRow.__table__  # type: ignore[attr-defined]
    in_session = image.c.session_id == session_id
    query = sa_select(
        select(func.count()).select_from(image).where(in_session).scalar_subquery(),
        select(func.max(image.c.id)).where(in_session).scalar_subquery(),
        select(func.max(image.c.updated_at)).where(in_session).scalar_subquery(),
        session.c.head_image_id,
        session.c.updated_at,
    ).where(session.c.id == session_id)
    with engine.connect() as conn:
        found = conn.execute(query).first()
    if found is None:
        return ""
    count, newest_id, newest_change, head_id, session_changed = found
    return (
        f"{count}.{newest_id or 0}.{_micros(newest_change)}.{head_id or 0}"
        f".{_micros(session_changed)}"
    )


def stamp_change_time(stamp: str) -> datetime | None:
    """The newest image change a :func:`session_stamp` saw: where the next
    :func:`images_changed_since` starts. None (start from the beginning) for a session that
    had no image, or for text that is not a stamp."""
    parts = stamp.split(".")
    if len(parts) != 5 or not parts[2].isascii() or not parts[2].isdigit():
        return None
    micros = int(parts[2])
    if micros == 0:
        return None
    try:
        return _EPOCH + micros * _MICROSECOND
    except OverflowError:
        return None


def images_changed_since(
    engine: Engine, session_id: int, since: datetime | None, limit: int
) -> list[ImageRecord]:
    """The session's images added or changed after ``since`` (None: all), oldest change
    first, at most ``limit``: what a poll sends instead of the whole session.

    How a poller misses nothing and repeats nothing: it starts from
    ``stamp_change_time(stamp)`` of the stamp it last showed, and next time from the
    ``updated_at`` of the last record received (when ``limit`` cut the answer short) or from
    the new stamp. ``updated_at > since`` is exact because within a session every write
    takes a time later than any change already committed there, under a lock held until it
    commits (``store.writes.change_time``): a change not seen yet cannot carry a time at or
    before one that was seen, even when two writes fall in the same microsecond or commit in
    another order than they started. Reading the stamp before the images it describes only
    ever re-sends an image, never skips one. Rows that revision 0003 gave their finished (or
    created) time may share a time, but they are all older than any stamp taken since.
    Read from ``ix_image_session_id_updated_at``, in its order, without a sort.
    """
    image = ImageRow.__table__  # type: ignore[attr-defined]
    query = sa_select(*record_columns()).where(image.c.session_id == session_id)
    if since is not None:
        query = query.where(image.c.updated_at > since)
    query = query.order_by(image.c.updated_at, image.c.id).limit(limit)
    with engine.connect() as conn:
        return [ImageRecord(*row) for row in conn.execute(query)]


def _micros(moment: datetime | None) -> int:
    """Microseconds since 1970 (0 for none), exactly: a stamp's parts are whole numbers."""
    return (moment - _EPOCH) // _MICROSECOND if moment is not None else 0


def session_has_shot(engine: Engine, session_id: int, provider: str) -> bool:
    """Whether the session has a shot made through ``provider``: a conversation with it has
    started, so its primer was already sent (one row read, not the session's images)."""
    query = _shots_through(select(ImageRow.id), session_id, provider).limit(1)
    with transaction(engine) as db:
        return db.exec(query).first() is not None


def shot_params_through(
    engine: Engine, session_id: int, provider: str, before_id: int
) -> list[dict[str, Any]]:
    """The parameters of the session's shots through ``provider`` made before ``before_id``
    (hidden ones too, as :func:`session_has_shot` counts them): a conversation's turns, read
    without the session's other images."""
    query = _shots_through(select(ImageRow.params), session_id, provider).where(
        col(ImageRow.id) < before_id
    )
    with transaction(engine) as db:
        return list(db.exec(query).all())


def _shots_through(query: Any, session_id: int, provider: str) -> Any:
    """``query`` narrowed to the session's shots made through ``provider``."""
    return (
        query.where(ImageRow.session_id == session_id)
        .where(ImageRow.kind == "shot")
        .where(ImageRow.provider == provider)
    )
