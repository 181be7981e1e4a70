"""cluster: nodes, the grant leader, and a fenced lease on every running job

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_nodes")),
    )
    op.create_table(
        "cluster_leader",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_leader")),
    )
    op.execute("INSERT INTO cluster_leader (id, epoch) VALUES (1, 0)")
    with op.batch_alter_table("copy_jobs") as batch:
        batch.add_column(sa.Column("lease_epoch", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("run_purpose", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("granted", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("grant_applied", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("active", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("units_completed", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("units_failed", sa.Integer(), nullable=False, server_default="0"))
        batch.create_index(batch.f("ix_copy_jobs_owner"), ["owner"])
    # Jobs a single-node ferry left RUNNING are the cluster's to place again.
    op.execute("UPDATE copy_jobs SET owner = NULL, run_purpose = NULL")


def downgrade() -> None:
    with op.batch_alter_table("copy_jobs") as batch:
        batch.drop_index(batch.f("ix_copy_jobs_owner"))
        for column in (
            "units_failed",
            "units_completed",
            "active",
            "grant_applied",
            "granted",
            "run_purpose",
            "lease_epoch",
        ):
            batch.drop_column(column)
    op.drop_table("cluster_leader")
    op.drop_table("nodes")
