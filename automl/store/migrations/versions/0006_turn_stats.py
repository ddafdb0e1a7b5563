"""Controller turn latency: each controller's histogram, written with its heartbeat.

``/metrics`` sums ``turn_stats`` over the experiments (see ``automl/_turns.py``), so the
latency of controllers running in workers' child processes reaches Prometheus.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("automl_experiments", sa.Column("turn_stats", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("automl_experiments") as batch:
        batch.drop_column("turn_stats")
