"""Table definitions (SQLAlchemy Core).

Alembic migrations in ``migrations/`` bring an existing store up to date; a new, empty database
gets these tables directly (one ``create_all``, stamped :data:`HEAD`), which is what the
migrations produce (tests/test_store_schema.py compares the two on every backend).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

HEAD = "0006"

#: Alembic's version table, as ``alembic upgrade`` creates it (see migrations/env.py).
version = sa.Table(
    "automl_alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="automl_alembic_version_pkc"),
)

experiments = sa.Table(
    "automl_experiments",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False, default=""),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float(precision=53), nullable=False),
    sa.Column("started_at", sa.Float(precision=53)),
    sa.Column("finished_at", sa.Float(precision=53)),
    sa.Column("stop_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("controller", sa.String(255)),
    sa.Column("heartbeat_at", sa.Float(precision=53)),
    sa.Column("sampler_state", sa.Text, nullable=False, default="{}"),
    # 0004: the service queue (automl.store._queue)
    sa.Column("queued", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    sa.Column("priority", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("worker", sa.String(255)),
    sa.Column("claimed_at", sa.Float(precision=53)),
    sa.Column("takeovers", sa.Integer, nullable=False, default=0, server_default="0"),
    # 0005: bumped by every hand-made change the controller must apply (automl._steering)
    sa.Column("steer_seq", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.Column("steer_applied", sa.Integer, nullable=False, default=0, server_default="0"),
    # 0006: the controller's turn latency histogram (automl._turns), written with its heartbeat
    sa.Column("turn_stats", sa.Text, nullable=True),
    sa.Index("ix_automl_experiments_queue", "queued", "state"),
)

trials = sa.Table(
    "automl_trials",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column(
        "experiment_id", sa.String(36), sa.ForeignKey("automl_experiments.id"), nullable=False
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("metrics", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.Float(precision=53), nullable=False),
    sa.Column("started_at", sa.Float(precision=53)),
    sa.Column("finished_at", sa.Float(precision=53)),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("attrs", sa.Text, nullable=False, default="{}"),
    sa.Column("runner", sa.Text, nullable=False, default="{}"),
    sa.Column("outputs", sa.Text, nullable=True, default="{}"),  # 0002; NULL reads as {}
    sa.UniqueConstraint("experiment_id", "number", name="uq_automl_trials_experiment_number"),
)

observations = sa.Table(
    "automl_observations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trial_id", sa.String(128), sa.ForeignKey("automl_trials.id"), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("step", sa.BigInteger),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("time", sa.Float(precision=53), nullable=False),
    sa.Index("ix_automl_observations_trial", "trial_id", "metric"),
)

workers = sa.Table(  # 0004: controller workers and their leases
    "automl_workers",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("max_experiments", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float(precision=53), nullable=False),
    sa.Column("heartbeat_at", sa.Float(precision=53), nullable=False),
    sa.Column("stopped_at", sa.Float(precision=53)),
)
