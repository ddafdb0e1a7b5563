"""The digits pipeline in Python: the same stages as digits-pipeline.yaml.

automl pipeline run examples/pipelines/pipeline.py --param max_trials=4
automl pipeline compile examples/pipelines/pipeline.py -o digits-kfp.yaml
"""

from __future__ import annotations

import stages

from integrations.pipelines import Pipeline, Stage

TUNE_SPEC = {
    "name": "digits-tune",
    "objective": {"metric": "accuracy", "direction": "maximize"},
    "algorithm": "tpe",
    "seed": "${params.seed}",
    "parameters": {
        "model": ["svc", "logreg"],
        "C": {"type": "double", "min": 0.01, "max": 100, "log": True},
        "gamma": {"type": "double", "min": 0.0001, "max": 0.1, "log": True},
    },
    "budget": {"max_trials": 8, "parallel": 1},
}

pipeline = Pipeline(
    "digits",
    [
        Stage.python(
            stages.prepare,
            args={"test_size": "${params.test_size}", "seed": "${params.seed}"},
            outputs={"data": "dataset", "n_train": "int", "n_test": "int"},
        ),
        Stage.tune(
            "tune",
            spec=TUNE_SPEC,
            objective=stages.objective,
            inputs=["prepare.data"],
            max_trials="${params.max_trials}",
        ),
        Stage.train_best(stages.fit, name="train", inputs=["prepare.data", "tune.best_params"]),
        Stage.evaluate(stages.score, name="evaluate", inputs=["train.model", "prepare.data"]),
        Stage.serve("serve", inputs=["train.model"], args={"name": "digits"}),
    ],
    parameters={"test_size": 0.25, "seed": 0, "max_trials": 8},
    description="Split digits, tune an SVC/LogisticRegression, train the best, test it, "
    "write a KServe manifest.",
)
