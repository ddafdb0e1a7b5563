"""Observation steps as 64-bit integers: a trial may count steps past 2**31 (samples, tokens).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("automl_observations") as batch:
        batch.alter_column("step", type_=sa.BigInteger, existing_type=sa.Integer)


def downgrade() -> None:
    with op.batch_alter_table("automl_observations") as batch:
        batch.alter_column("step", type_=sa.Integer, existing_type=sa.BigInteger)
