"""image.variation and image.variations: which take of a repeated shot an image is

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-15 10:00:00.000000

A shot list's ``repeat: 3`` sends one request three times; issue 13 asks that the three be
told apart wherever the series is shown ("take 2/3"), and that a retry of a failed take be
made as the same take. Both columns are nullable and stay empty for a single shot (and for
every image made before this revision, none of which knew its take), so they are added in
place and dropped in place on SQLite and PostgreSQL alike: no rebuild of ``image`` (see 0003
for why that is out of the question at 100,000 rows).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("image", sa.Column("variation", sa.Integer(), nullable=True))
    op.add_column("image", sa.Column("variations", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("image", "variations")
    op.drop_column("image", "variation")
