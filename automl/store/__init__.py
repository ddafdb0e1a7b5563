"""The durable store: experiments, trials and observations over SQLAlchemy."""

from automl.store._sql import (
    DEFAULT_STORE,
    ExperimentRepository,
    ObservationRepository,
    Store,
    TrialEnd,
    TrialRepository,
    normalize_url,
)

__all__ = [
    "DEFAULT_STORE",
    "ExperimentRepository",
    "ObservationRepository",
    "Store",
    "TrialEnd",
    "TrialRepository",
    "normalize_url",
]
