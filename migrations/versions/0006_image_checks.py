"""image_check: consistency checks as rows, and image.picked_at: the take a retake loop chose

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-16 10:00:00.000000

Issue 14 checks every shot against its anchor and model sheet (``onmodel check``) and retakes
a shot until one take passes. A check is a row of its own, like an image: which image, which
checker and version (and, for a vision judge, which model), the overall score 0-100, the
per-trait results, what it cost and how long it took. It is recorded ``pending`` before a
paid judge is asked, and a refused or malformed answer is a ``failed`` row, never a lost one.
Checks of an image are read through ``ix_image_check_image_id`` a page of images at a time.

``image.picked_at`` marks the take a retake loop chose among its siblings (the best score);
nullable, so it is added and dropped in place on SQLite and PostgreSQL alike (see 0003 for
why ``image`` is never rebuilt).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("checker", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("min_score", sa.Integer(), nullable=True),
        sa.Column("traits", sa.JSON(), nullable=False),
        sa.Column("summary", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("returned", sa.JSON(), nullable=False),
        sa.Column("usage", sa.JSON(), nullable=True),
        sa.Column("cost_usd", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error_type", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("error_message", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["image.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_image_check_image_id", "image_check", ["image_id"])
    picked_at = sa.Column("picked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
    op.add_column("image", picked_at)


def downgrade() -> None:
    op.drop_column("image", "picked_at")
    op.drop_index("ix_image_check_image_id", table_name="image_check")
    op.drop_table("image_check")
