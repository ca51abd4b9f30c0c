"""Batches shared by several machines: workers, their claims, and what they share

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 03:30:00.000000

Issue 17 lets several ``onmodel batch run`` processes, on different machines, against one
PostgreSQL database, make one batch together (``onmodel.batch.shared``):

* ``batch_worker``: each process running the batch, with its heartbeat (``seen_at``); one not
  seen for its ``lease`` is dead and its shots are taken over.
* ``batch_claim``: each shot (or check) of the batch's current run, and who makes it. A worker
  takes the next open one with ``FOR UPDATE SKIP LOCKED``, so no two take the same;
  ``ix_batch_claim_open`` finds it in list order without reading the done ones.
* ``batch_share``: the counters every worker of a batch keeps together: the run (``epoch``),
  money spent and reserved, the budget, and the spacing of request starts.

SQLite keeps its single-machine lock and never writes these tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_share",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("spent_nusd", sa.BigInteger(), nullable=False),
        sa.Column("reserved_nusd", sa.BigInteger(), nullable=False),
        sa.Column("unknown_costs", sa.Integer(), nullable=False),
        sa.Column("budget_nusd", sa.BigInteger(), nullable=True),
        sa.Column("rate_interval", sa.Float(), nullable=True),
        sa.Column("rate_next_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"]),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    op.create_table(
        "batch_worker",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("lease", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.Column("stopped_at", sa.Float(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batch_worker_batch_id", "batch_worker", ["batch_id"])
    op.create_table(
        "batch_claim",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("shot_key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("reserved_nusd", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"]),
        sa.PrimaryKeyConstraint("batch_id", "shot_key"),
    )
    op.create_index("ix_batch_claim_open", "batch_claim", ["batch_id", "state", "position"])
    op.create_index("ix_batch_claim_worker_id", "batch_claim", ["worker_id"])


def downgrade() -> None:
    op.drop_index("ix_batch_claim_worker_id", table_name="batch_claim")
    op.drop_index("ix_batch_claim_open", table_name="batch_claim")
    op.drop_table("batch_claim")
    op.drop_index("ix_batch_worker_batch_id", table_name="batch_worker")
    op.drop_table("batch_worker")
    op.drop_table("batch_share")
