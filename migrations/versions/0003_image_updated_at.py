"""image.updated_at, indexed by session; the redundant image_reference index dropped

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 10:00:00.000000

A page polling a long series asks "what changed since I last looked?"; without a change time
it could only rebuild the whole session (12.7 s at 100,000 images, issue 12). Every write to
an image row now sets ``updated_at`` (``onmodel.store.writes.change_time`` says how it grows
in commit order); the (session_id, updated_at) index answers a session's newest change and
the rows changed after a time from the index alone. Existing rows get the time they last
changed as far as the row tells: when they finished, else when they were recorded.

The column is added with a constant default, never by rebuilding the table: SQLite can only
add a NOT NULL column that has one, and batch mode's copy-and-rename of ``image`` is out of
the question (with foreign keys on, dropping the old table checks every row against
``image_reference.ref_image_id``, which has no index: hours at 100,000 images). Every insert
sets the column itself, so the default is never what a row holds.

``ix_image_reference_image_id`` duplicated the index behind ``uq_reference_position``
(image_id, position), which already serves every lookup by image id, in position order;
dropping it saves a write per reference.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_image_reference_image_id", table_name="image_reference")
    op.add_column(
        "image",
        sa.Column(
            "updated_at",
            sqlmodel.sql.sqltypes.UTCDateTime(),
            nullable=False,
            server_default="1970-01-01 00:00:00",
        ),
    )
    op.execute("UPDATE image SET updated_at = COALESCE(finished_at, created_at)")
    op.create_index("ix_image_session_id_updated_at", "image", ["session_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_image_session_id_updated_at", table_name="image")
    op.drop_column("image", "updated_at")
    op.create_index("ix_image_reference_image_id", "image_reference", ["image_id"])
