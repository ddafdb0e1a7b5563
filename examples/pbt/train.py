"""One PBT step of an SGD classifier on scikit-learn's digits: resume, train, print, save.

The trainer contract of automl's ``pbt`` algorithm (docs/pbt.md):

* ``AUTOML_PARENT_CHECKPOINT_DIR`` (absent in generation 0) holds a copy of the parent trial's
  checkpoint: load the model from it, or start from scratch when it is unset;
* train a few epochs with the hyperparameters from the arguments (the parent's, perturbed, when
  this trial replaced a weak member of the population);
* print ``epoch=N accuracy=A`` lines (N counts every epoch of the lineage), which the StdOut
  collector reads;
* save the model to ``AUTOML_CHECKPOINT_DIR``, where the next generation copies it from.

Run on its own (no variables set) it trains from scratch and saves nothing.
"""

import argparse
import os
import pickle
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

CHECKPOINT = "model.pkl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eta0", type=float, required=True, help="learning rate")
    parser.add_argument("--alpha", type=float, required=True, help="regularization strength")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--penalty", choices=["l2", "elasticnet", "l1"], default="l2")
    parser.add_argument("--epochs", type=int, default=3, help="epochs this trial trains")
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)

    params = {"eta0": args.eta0, "alpha": args.alpha, "penalty": args.penalty}
    parent = os.environ.get("AUTOML_PARENT_CHECKPOINT_DIR")
    if parent and (Path(parent) / CHECKPOINT).exists():
        # Checkpoints are pickles written by this script: load only files you trust.
        with open(Path(parent) / CHECKPOINT, "rb") as fh:
            state = pickle.load(fh)
        model, epoch = state["model"], state["epoch"]
        model.set_params(**params)  # the new hyperparameters apply from here on
        print(f"resumed from {parent} at epoch {epoch}")
    else:
        model = SGDClassifier(loss="log_loss", learning_rate="constant", random_state=0, **params)
        epoch = 0

    classes = np.unique(y)
    for _ in range(args.epochs):
        order = np.random.default_rng(epoch).permutation(len(X_train))
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            model.partial_fit(X_train[batch], y_train[batch], classes=classes)
        epoch += 1
        print(f"epoch={epoch} accuracy={model.score(X_val, y_val):.4f}", flush=True)

    out = os.environ.get("AUTOML_CHECKPOINT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        tmp = Path(out) / (CHECKPOINT + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump({"model": model, "epoch": epoch}, fh)
        tmp.replace(Path(out) / CHECKPOINT)  # never leave a half-written checkpoint


if __name__ == "__main__":
    main()
