"""Pipelines around the tuning loop: prepare data -> tune -> train the best -> evaluate -> serve.

Declare a pipeline in YAML (``apiVersion: automl/v1``, ``kind: Pipeline``) or in Python
(:class:`Pipeline` of :class:`Stage` objects and functions marked with :func:`stage`), run it
here with ``automl pipeline run FILE`` (:func:`run_pipeline`), or compile it to a Kubeflow
Pipelines v2 pipeline with ``automl pipeline compile FILE`` (:func:`compile_pipeline`). See
docs/pipelines.md.
"""

from __future__ import annotations

from integrations.pipelines._execute import StageError, execute_stage
from integrations.pipelines._kfp import EphemeralStoreWarning, compile_pipeline, load_compiled
from integrations.pipelines._load import load_pipeline, parse_pipeline
from integrations.pipelines._model import Input, Output, Pipeline, Stage, StageKind, stage
from integrations.pipelines._run import PipelineRun, StageResult, run_pipeline

__all__ = [
    "EphemeralStoreWarning",
    "Input",
    "Output",
    "Pipeline",
    "PipelineRun",
    "Stage",
    "StageError",
    "StageKind",
    "StageResult",
    "compile_pipeline",
    "execute_stage",
    "load_compiled",
    "load_pipeline",
    "parse_pipeline",
    "run_pipeline",
    "stage",
]
