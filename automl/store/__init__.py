"""The durable store: experiments, trials and observations over SQLAlchemy."""

from automl.store._sql import DEFAULT_STORE, ExperimentRepository, Store, normalize_url
from automl.store._trials import ObservationRepository, TrialEnd, TrialRepository

__all__ = [
    "DEFAULT_STORE",
    "ExperimentRepository",
    "ObservationRepository",
    "Store",
    "TrialEnd",
    "TrialRepository",
    "normalize_url",
]
