"""Neural architecture search on torch: model builders, trainers, data and DARTS.

* :func:`build_model` turns a :class:`search.NasSpace` architecture (Katib's ENAS form) into a
  torch module; :func:`train_child` trains it and reports ``Validation-Accuracy`` per epoch.
* :func:`darts_search` runs Katib's DARTS (a one-shot supernet, bilevel optimisation) and
  returns the derived :class:`Genotype`; :func:`build_darts_network` rebuilds it for
  :func:`train_network`.
* :func:`record_result` stores a found architecture with the trial; :func:`rebuild_model` and
  :func:`export_source` rebuild it from that description.
* :func:`load_digits_data` and :func:`load_image_data` give small offline image data.

Trials run on the CPU, or on a GPU when one is visible (:func:`device_for`).
"""

from __future__ import annotations

from nas._darts import (
    DEFAULT_SEARCH_SPACE,
    DartsNetwork,
    DartsSettings,
    Genotype,
    SearchNetwork,
    build_darts_network,
    darts_search,
    darts_search_space,
)
from nas._data import ImageData, load_digits_data, load_image_data
from nas._export import OUTPUT_KEY, export_source, rebuild_model, record_result
from nas._model import NasNetwork, build_model, check_space
from nas._train import METRIC, device_for, train_child, train_network
from search._nas_space import Architecture, NasSpace, Operation

__all__ = [
    "DEFAULT_SEARCH_SPACE",
    "METRIC",
    "OUTPUT_KEY",
    "Architecture",
    "DartsNetwork",
    "DartsSettings",
    "Genotype",
    "ImageData",
    "NasNetwork",
    "NasSpace",
    "Operation",
    "SearchNetwork",
    "build_darts_network",
    "build_model",
    "check_space",
    "darts_search",
    "darts_search_space",
    "device_for",
    "export_source",
    "load_digits_data",
    "load_image_data",
    "rebuild_model",
    "record_result",
    "train_child",
    "train_network",
]
