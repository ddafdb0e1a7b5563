"""Trial outputs: where a trial's artifacts are and what they hold (JSON).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no server default: MySQL before 8.0.13 refuses a DEFAULT on TEXT, and rows of
    # trials stored before this revision read as "no outputs" (NULL means {}).
    op.add_column("automl_trials", sa.Column("outputs", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("automl_trials") as batch:
        batch.drop_column("outputs")
