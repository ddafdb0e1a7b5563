"""The service queue: queued experiments with a priority, the worker holding each, workers' leases.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "automl_experiments",
        sa.Column("queued", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "automl_experiments",
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("automl_experiments", sa.Column("worker", sa.String(255), nullable=True))
    op.add_column(
        "automl_experiments", sa.Column("claimed_at", sa.Float(precision=53), nullable=True)
    )
    op.add_column(
        "automl_experiments",
        sa.Column("takeovers", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_automl_experiments_queue", "automl_experiments", ["queued", "state"])
    op.create_table(
        "automl_workers",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("max_experiments", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float(precision=53), nullable=False),
        sa.Column("heartbeat_at", sa.Float(precision=53), nullable=False),
        sa.Column("stopped_at", sa.Float(precision=53), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("automl_workers")
    op.drop_index("ix_automl_experiments_queue", table_name="automl_experiments")
    with op.batch_alter_table("automl_experiments") as batch:
        for column in ("takeovers", "claimed_at", "worker", "priority", "queued"):
            batch.drop_column(column)
