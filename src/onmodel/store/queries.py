"""Reads that are one SQL statement instead of a loop of them, kept behind the store.

Written with SQLAlchemy Core, and only with SQL that SQLite and PostgreSQL both run
(``WITH RECURSIVE``), so callers never see a dialect.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import CompoundSelect, Engine, union
from sqlmodel import Session, col, select

from onmodel.limits import MAX_ID
from onmodel.status import ImageStatus
from onmodel.store.database import transaction
from onmodel.store.models import CharacterRow, ImageReferenceRow, ImageRow, SessionRow
from onmodel.store.records import (
    CharacterRecord,
    ImageRecord,
    ReferenceRecord,
    SessionRecord,
    record_from,
)

# Ids per ``IN (...)``: SQLite allows 32,766 bound values (older builds 999).
ID_CHUNK = 500


def ancestor_rows(db: Session, image_id: int) -> list[ImageRow]:
    """The rows of the image's parent, its parent's parent and so on, oldest first.

    One recursive query, whatever the depth (walking ``parent`` one row at a time cost a query
    per generation). ``UNION``, not ``UNION ALL``: on a damaged database whose parent links
    form a cycle it stops when no new row turns up, instead of recursing forever; the order
    is then rebuilt by following the links, which visits each row once.
    """
    table = ImageRow.__table__  # type: ignore[attr-defined]
    chain = select(table.c.id, table.c.parent_id).where(table.c.id == image_id)
    chain_cte = chain.cte("chain", recursive=True)
    step = select(table.c.id, table.c.parent_id).join(
        chain_cte, table.c.id == chain_cte.c.parent_id
    )
    chain_cte = chain_cte.union(step)
    rows = db.scalars(select(ImageRow).where(table.c.id.in_(select(chain_cte.c.id)))).all()
    by_id = {row.id: row for row in rows}
    image = by_id.pop(image_id, None)
    found: list[ImageRow] = []
    next_id = image.parent_id if image is not None else None
    while next_id is not None and (row := by_id.pop(next_id, None)) is not None:
        found.append(row)
        next_id = row.parent_id
    return list(reversed(found))


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
    """By id, slug or (for text that is neither) name; an id no row can have finds nothing."""
    with transaction(engine) as db:
        row = _by_ref(db, CharacterRow, ref)
        if row is None and isinstance(ref, str):
            row = db.exec(select(CharacterRow).where(CharacterRow.name == ref)).first()
        return record_from(CharacterRecord, row) if row is not None else None


def characters(engine: Engine) -> list[CharacterRecord]:
    with transaction(engine) as db:
        rows = db.exec(select(CharacterRow).order_by(col(CharacterRow.id))).all()
        return [record_from(CharacterRecord, row) for row in rows]


def character_slug_taken(engine: Engine, slug: str) -> bool:
    with transaction(engine) as db:
        return db.exec(select(CharacterRow.id).where(CharacterRow.slug == slug)).first() is not None


def session(engine: Engine, ref: str | int) -> SessionRecord | None:
    with transaction(engine) as db:
        row = _by_ref(db, SessionRow, ref)
        return record_from(SessionRecord, row) if row is not None else None


def sessions(engine: Engine, character_id: int | None = None) -> list[SessionRecord]:
    query = select(SessionRow).order_by(col(SessionRow.id))
    if character_id is not None:
        query = query.where(SessionRow.character_id == character_id)
    with transaction(engine) as db:
        return [record_from(SessionRecord, row) for row in db.exec(query).all()]


def image(engine: Engine, image_id: int) -> ImageRecord | None:
    with transaction(engine) as db:
        row = db.get(ImageRow, image_id)
        return record_from(ImageRecord, row) if row is not None else None


def children(engine: Engine, image_id: int) -> list[ImageRecord]:
    query = select(ImageRow).where(ImageRow.parent_id == image_id).order_by(col(ImageRow.id))
    with transaction(engine) as db:
        return [record_from(ImageRecord, row) for row in db.exec(query).all()]


def session_images(engine: Engine, session_id: int) -> list[ImageRecord]:
    query = select(ImageRow).where(ImageRow.session_id == session_id).order_by(col(ImageRow.id))
    with transaction(engine) as db:
        return [record_from(ImageRecord, row) for row in db.exec(query).all()]


def lineage_images(engine: Engine, session_id: int, anchor_id: int | None) -> list[ImageRecord]:
    """A session's images, every image outside it that one of them branched from (followed
    to the root, a generation per query), and the anchor; in id order."""
    with transaction(engine) as db:
        rows = list(db.exec(select(ImageRow).where(ImageRow.session_id == session_id)).all())
        known = {row.id for row in rows}
        missing = {row.parent_id for row in rows if row.parent_id and row.parent_id not in known}
        if anchor_id is not None and anchor_id not in known:
            missing.add(anchor_id)
        while missing:
            extra = db.exec(select(ImageRow).where(col(ImageRow.id).in_(missing))).all()
            rows.extend(extra)
            known.update(row.id for row in extra)
            missing = {r.parent_id for r in extra if r.parent_id and r.parent_id not in known}
        return [record_from(ImageRecord, row) for row in sorted(rows, key=lambda r: r.id or 0)]


def references(engine: Engine, image_id: int) -> list[ReferenceRecord]:
    return references_of(engine, [image_id])[image_id]


def finished_costs(engine: Engine, session_id: int | None) -> list[tuple[str, str | None]]:
    """``(model or provider, cost)`` of every finished image (of one session, or of all)."""
    finished = [ImageStatus.SUCCEEDED, ImageStatus.FAILED]
    query = select(ImageRow.model, ImageRow.provider, ImageRow.cost_usd).where(
        col(ImageRow.status).in_(finished)
    )
    if session_id is not None:
        query = query.where(ImageRow.session_id == session_id)
    with transaction(engine) as db:
        return [(model or provider, cost) for model, provider, cost in db.exec(query).all()]


def image_id_for_shot_key(engine: Engine, shot_key: str) -> int | None:
    with transaction(engine) as db:
        return db.exec(select(ImageRow.id).where(ImageRow.shot_key == shot_key)).first()


def _by_ref(db: Any, table: type[Any], ref: str | int) -> Any:
    """Rows are named by slug or by numeric id; an id no row can have finds nothing."""
    if isinstance(ref, int) or (ref.isascii() and ref.isdigit()):
        key = int(ref)
        return db.get(table, key) if 0 < key <= MAX_ID else None
    return db.exec(select(table).where(table.slug == ref)).first()


def ancestors(engine: Engine, image_id: int) -> list[ImageRecord]:
    """The image's ancestors, oldest first, in one query (see :func:`ancestor_rows`)."""
    with transaction(engine) as db:
        return [record_from(ImageRecord, row) for row in ancestor_rows(db, image_id)]


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
