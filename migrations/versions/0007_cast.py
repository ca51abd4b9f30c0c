"""A cast: kinds of anchor, a session's members, and who is in each picture

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:00:00.000000

Issue 15 lets a series hold several characters, creatures, props and sets, and a shot show
several of them.

* ``character.kind`` says what an anchor is: ``character``, ``creature``, ``prop`` or ``set``
  (a location). Every existing row is a character.
* ``session_member`` holds a session's cast beyond its lead (``session.character_id``), in
  the order they were added.
* ``image_cast`` says who is in each picture, in the order their anchors were sent, with the
  model sheet each was drawn from. ``ix_image_cast_character_id_image_id`` answers "every
  image with Max" (``onmodel images --with max``) from the index alone. Every existing image
  shows its own character, so each gets one row here, copied in one statement.
* ``image_check.character_id``: which member a check measured, for a shot of several
  (NULL: the image's own character, as every check before this revision).

Columns are added in place (nullable or with a server default) on SQLite and PostgreSQL
alike; see 0003 for why ``image`` is never rebuilt.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    kind = sa.Column(
        "kind",
        sqlmodel.sql.sqltypes.AutoString(length=16),
        nullable=False,
        server_default="character",
    )
    op.add_column("character", kind)
    op.create_table(
        "session_member",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("added_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["session.id"]),
        sa.ForeignKeyConstraint(["character_id"], ["character.id"]),
        sa.PrimaryKeyConstraint("session_id", "character_id"),
    )
    op.create_index("ix_session_member_character_id", "session_member", ["character_id"])
    op.create_table(
        "image_cast",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("character_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sheet_version_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["image.id"]),
        sa.ForeignKeyConstraint(["character_id"], ["character.id"]),
        sa.PrimaryKeyConstraint("image_id", "character_id"),
    )
    op.create_index(
        "ix_image_cast_character_id_image_id", "image_cast", ["character_id", "image_id"]
    )
    op.execute(
        "INSERT INTO image_cast (image_id, character_id, position, sheet_version_id) "
        "SELECT id, character_id, 0, sheet_version_id FROM image"
    )
    op.add_column("image_check", sa.Column("character_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("image_check", "character_id")
    op.drop_index("ix_image_cast_character_id_image_id", table_name="image_cast")
    op.drop_table("image_cast")
    op.drop_index("ix_session_member_character_id", table_name="session_member")
    op.drop_table("session_member")
    op.drop_column("character", "kind")
