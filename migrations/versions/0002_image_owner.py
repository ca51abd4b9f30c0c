"""image.owner: the process that is making a pending image

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00.000000

A pending row must say which process is paying for it, so that any later process can tell a
request in flight from one whose process was killed (see ``onmodel.owners``). Rows written
before this revision keep NULL; ``onmodel.store.stale`` says how those are judged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_column("owner")
