"""Curation: hidden rows, tags, model sheet versions, batch key slugs, purge indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-14 10:00:00.000000

Issue 13 lets an illustrator tidy a series. Every change here is a nullable column, a new
table or a new index, never a rebuild of a big table (see 0003 for why that is out of the
question for ``image`` at 100,000 rows); SQLite and PostgreSQL both add a nullable column in
place, and drop it again the same way.

* ``hidden_at`` on ``character``, ``session`` and ``image``: hidden (the CLI's "delete") until a
  purge removes the rows; ``ix_image_hidden_session_id`` is a partial index of hidden images
  only, so shown images cost nothing to keep out of it.
* ``image_tag``: the illustrator's tags, found by tag through ``ix_image_tag_tag``.
* ``sheet_version``: every model sheet a character has had, and ``image.sheet_version_id``, the
  one each image was made with. Sheets could not be edited before this revision, so each
  character's current sheet becomes its version 1, and it is the sheet every existing image
  was made with. The column is a plain integer the store keeps right (it sets it when a row
  is recorded, and deletes a sheet version only with its character's images): as a
  ``REFERENCES`` column, SQLite could add it in place but drop it again only by copying
  ``image``, which its foreign keys forbid inside the migration's transaction.
* ``batch.key_slug``: the session slug a batch's shot keys were made with, so a session can be
  renamed without its batches making their shots again. Until now it was always the slug.
* ``ix_image_retry_of_id`` and ``ix_image_reference_ref_image_id``: deleting an image makes the
  database look for rows that point at it through these columns; unindexed, each deleted row
  cost a scan of the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HIDDEN_ONLY = sa.text("hidden_at IS NOT NULL")


def upgrade() -> None:
    for table in ("character", "session", "image"):
        op.add_column(
            table, sa.Column("hidden_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.create_index(
        "ix_image_hidden_session_id",
        "image",
        ["session_id", "hidden_at"],
        sqlite_where=_HIDDEN_ONLY,
        postgresql_where=_HIDDEN_ONLY,
    )
    op.create_index("ix_image_retry_of_id", "image", ["retry_of_id"])
    op.create_index("ix_image_reference_ref_image_id", "image_reference", ["ref_image_id"])

    op.create_table(
        "image_tag",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("tag", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["image.id"]),
        sa.PrimaryKeyConstraint("image_id", "tag"),
    )
    op.create_index("ix_image_tag_tag", "image_tag", ["tag"])

    op.create_table(
        "sheet_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("sheet", sa.JSON(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["character_id"], ["character.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("character_id", "number", name="uq_sheet_version_number"),
    )
    op.add_column("image", sa.Column("sheet_version_id", sa.Integer(), nullable=True))
    op.execute(
        "INSERT INTO sheet_version (character_id, number, sheet, created_at) "
        "SELECT id, 1, sheet, created_at FROM character"
    )
    op.execute(
        "UPDATE image SET sheet_version_id = (SELECT sheet_version.id FROM sheet_version "
        "WHERE sheet_version.character_id = image.character_id)"
    )

    op.add_column("batch", sa.Column("key_slug", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.execute(
        "UPDATE batch SET key_slug = (SELECT session.slug FROM session "
        "WHERE session.id = batch.session_id)"
    )


def downgrade() -> None:
    op.drop_column("batch", "key_slug")
    op.drop_column("image", "sheet_version_id")
    op.drop_table("sheet_version")
    op.drop_index("ix_image_tag_tag", table_name="image_tag")
    op.drop_table("image_tag")
    op.drop_index("ix_image_reference_ref_image_id", table_name="image_reference")
    op.drop_index("ix_image_retry_of_id", table_name="image")
    op.drop_index("ix_image_hidden_session_id", table_name="image")
    for table in ("image", "session", "character"):
        op.drop_column(table, "hidden_at")
