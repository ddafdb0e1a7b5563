"""Stages around the loop (notebooks, serving, pipelines).

- ``integrations.serving``: ``automl serve`` (a trial's model behind KServe's v1 and Open
  Inference v2 protocols) and ``automl export --format kserve`` (InferenceService manifests).
- ``integrations.pipelines``: ``automl pipeline run|compile`` (stages around the tuning loop, run
  locally or compiled to a Kubeflow Pipelines v2 pipeline).
- Notebook trials run through ``trials._notebook`` (papermill); plot helpers live in
  ``automl.plots``.
"""
