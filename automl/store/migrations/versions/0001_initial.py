"""Initial schema: experiments, trials, observations.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automl_experiments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("started_at", sa.Float(precision=53)),
        sa.Column("finished_at", sa.Float(precision=53)),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("controller", sa.String(255)),
        sa.Column("heartbeat_at", sa.Float(precision=53)),
        sa.Column("sampler_state", sa.Text, nullable=False),
    )
    op.create_table(
        "automl_trials",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column(
            "experiment_id", sa.String(36), sa.ForeignKey("automl_experiments.id"), nullable=False
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("value", sa.Float(precision=53)),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.Column("started_at", sa.Float(precision=53)),
        sa.Column("finished_at", sa.Float(precision=53)),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attrs", sa.Text, nullable=False),
        sa.Column("runner", sa.Text, nullable=False),
        sa.UniqueConstraint("experiment_id", "number", name="uq_automl_trials_experiment_number"),
    )
    op.create_table(
        "automl_observations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("trial_id", sa.String(128), sa.ForeignKey("automl_trials.id"), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("value", sa.Float(precision=53)),
        sa.Column("time", sa.Float(precision=53), nullable=False),
    )
    op.create_index("ix_automl_observations_trial", "automl_observations", ["trial_id", "metric"])


def downgrade() -> None:
    op.drop_table("automl_observations")
    op.drop_table("automl_trials")
    op.drop_table("automl_experiments")
