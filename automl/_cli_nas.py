"""Neural architecture search in the ``automl`` command line.

The architecture display of ``automl show`` (:func:`_found_architecture`,
:func:`_architecture_cell`, :func:`_print_architecture`, on top of :mod:`automl._nas_view`) and
``automl export --format torch`` (:func:`_export_torch` and its ``_TORCH_*`` source
templates); :func:`register` adds the ``torch`` format, which :mod:`automl.cli` does when it is
imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from automl._cli_common import Exporter, console
from automl.core import ExperimentRecord, TrialRecord
from automl.errors import SpecError


def _found_architecture(e: ExperimentRecord, t: TrialRecord) -> dict[str, Any] | None:
    """What a NAS trial found, as data, or None (:func:`automl._nas_view.found_architecture`)."""
    from automl._nas_view import found_architecture

    return found_architecture(e.spec, t)


def _architecture_cell(e: ExperimentRecord, t: TrialRecord) -> str:
    """One trial's layer-wise architecture in a table cell: ``op0 / op1 (+skip) / ...``."""
    from automl._nas_view import architecture_rows

    found = _found_architecture(e, t)
    if found is None or found["kind"] != "layers":
        return "-"
    parts = []
    for row in architecture_rows(e.spec, found):
        skips = row["inputs"].count(",")  # inputs beyond the previous layer
        parts.append(row["operation"] + (f" (+{skips} skip)" if skips else ""))
    return escape(" / ".join(parts))


def _print_architecture(e: ExperimentRecord, t: TrialRecord) -> None:
    """``automl show``: the best trial's architecture, operations by layer, or its genotype."""
    from automl._nas_view import architecture_rows

    found = _found_architecture(e, t)
    if found is None:
        return
    rows = architecture_rows(e.spec, found)
    if found["kind"] == "darts":
        console.print(f"[bold]genotype of {t.id}[/bold] (DARTS)", highlight=False)
        for row in rows:
            line = f"  {row['cell']} node {row['node']}: {escape(row['edges'])}"
            console.print(line, highlight=False)
        return
    table = Table(title=f"architecture of {t.id}", show_header=True, header_style="bold")
    table.add_column("layer", justify="right")
    table.add_column("operation")
    table.add_column("inputs")
    for row in rows:
        table.add_row(str(row["layer"]), row["operation"], row["inputs"])
    console.print(table)


_TORCH_HEAD = '''"""The network trial $trial of experiment $experiment found (value $value).

Written by `automl export --format torch`. `build()` returns the untrained torch module;
`python $file --epochs N` retrains it (digits by default, or --data PATH for
nas.load_image_data) and prints Validation-Accuracy=..., so it also runs as a trial command.
"""

from __future__ import annotations

import argparse
from typing import Any

import nas
'''

_TORCH_LAYERS = '''from nas import Architecture, NasSpace, build_model

NAS_CONFIG = $nas_config
ARCHITECTURE = $architecture


def build(**sizes: int) -> Any:
    """The architecture as a torch module (in_channels, num_classes, height and width are
    needed only where NAS_CONFIG declares no inputSizes / outputSizes)."""
    return build_model(
        NasSpace.from_katib(NAS_CONFIG), Architecture.from_dict(ARCHITECTURE), **sizes
    )


def _sizes(data: Any) -> dict[str, int]:
    graph = NAS_CONFIG["graphConfig"]
    sizes: dict[str, int] = {}
    if "inputSizes" not in graph:
        sizes.update(in_channels=data.in_channels, height=data.height, width=data.width)
    if "outputSizes" not in graph:
        sizes["num_classes"] = data.num_classes
    return sizes
'''

_TORCH_DARTS = '''from nas import Genotype, build_darts_network

GENOTYPE = $genotype
SIZES = $sizes
DATA = $data  # channels and classes of the data the search ran on


def build(in_channels: int | None = None, num_classes: int | None = None) -> Any:
    """The derived DARTS network (Katib's cell layout)."""
    return build_darts_network(
        Genotype.from_dict(GENOTYPE),
        in_channels=in_channels or DATA.get("in_channels", 1),
        num_classes=num_classes or DATA.get("num_classes", 10),
        **SIZES,
    )


def _sizes(data: Any) -> dict[str, int]:
    return {"in_channels": data.in_channels, "num_classes": data.num_classes}
'''

_TORCH_MAIN = """

def main() -> None:
    parser = argparse.ArgumentParser(description="Retrain the exported network.")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="images for nas.load_image_data (default: digits)")
    parser.add_argument("--limit", type=int, help="use at most this many images")
    args = parser.parse_args()
    if args.data:
        data = nas.load_image_data(args.data, seed=args.seed, limit=args.limit)
    else:
        data = nas.load_digits_data(seed=args.seed, limit=args.limit)
    model = build(**_sizes(data))
    acc = nas.train_network(model, data, epochs=args.epochs, lr=args.lr, seed=args.seed)
    print(f"Validation-Accuracy={acc:.4f}")


if __name__ == "__main__":
    main()
"""


def _export_torch(
    client: Any, e: ExperimentRecord, output: Path | None, options: dict[str, Any]
) -> str | None:
    """A Python module that rebuilds a trial's architecture (or DARTS genotype) with ``nas``."""
    import pprint
    from string import Template

    from automl._api import _best

    if e.spec.nas_config is None:
        raise SpecError(
            f"needs a neural architecture search; experiment {e.name!r} has no nas_config",
            path="--format",
        )
    trials = client.trials(e.name)
    number = options.get("trial")
    if number is None:
        trial = _best(e.spec, trials)
        if trial is None:
            raise SpecError(f"experiment {e.name!r} has no succeeded trial", path="--trial")
    else:
        matching = [t for t in trials if t.number == number]
        if not matching:
            raise SpecError(f"no trial number {number} in {e.name!r}", path="--trial")
        trial = matching[0]
    found = _found_architecture(e, trial)
    if found is None:
        raise SpecError(
            f"trial {trial.id} has no architecture or genotype to export", path="--trial"
        )
    text = Template(_TORCH_HEAD).substitute(
        trial=trial.id,
        experiment=e.name,
        value=trial.value,
        file=output.name if output is not None else "model.py",
    )
    if found["kind"] == "darts":
        sizes = {
            "init_channels": found.get("init_channels", 16),
            "num_layers": found.get("num_layers", 3),
            "stem_multiplier": found.get("stem_multiplier", 3),
        }
        data = {k: found[k] for k in ("in_channels", "num_classes") if k in found}
        text += Template(_TORCH_DARTS).substitute(
            genotype=pprint.pformat(found["genotype"], width=96),
            sizes=pprint.pformat(sizes),
            data=pprint.pformat(data),
        )
    else:
        text += Template(_TORCH_LAYERS).substitute(
            nas_config=pprint.pformat(e.spec.nas_config, width=96),
            architecture=pprint.pformat(found["architecture"]),
        )
    return text + _TORCH_MAIN


def register(exporters: dict[str, Exporter]) -> None:
    """Add the ``torch`` format to ``automl export``.

    Args:
        exporters: ``automl export``'s formats by name.
    """
    exporters["torch"] = _export_torch
