"""Reads that are one SQL statement instead of a loop of them, kept behind the store.

Written with SQLAlchemy Core, and only with SQL that SQLite and PostgreSQL both run
(``WITH RECURSIVE``), so callers never see a dialect.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlmodel import Session, col

from onmodel.store.models import ImageReferenceRow, ImageRow

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
