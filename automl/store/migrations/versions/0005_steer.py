"""Steering a running experiment: a counter its controller watches for hand-made changes.

``automl enqueue``, ``invalidate``, ``rerun`` and ``budget`` bump ``steer_seq`` in the same
transaction as their change; the controller reads it with its stop flag and applies what changed
at its next turn, then records the counter it applied in ``steer_applied`` (so a caller can
wait until a change took effect).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "automl_experiments",
        sa.Column("steer_seq", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column(
        "automl_experiments",
        sa.Column("steer_applied", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("automl_experiments") as batch:
        batch.drop_column("steer_applied")
        batch.drop_column("steer_seq")
