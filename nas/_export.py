"""Found architectures as structured data: stored with the trial, rebuilt, exported as source.

A *description* is the JSON-able mapping :meth:`NasNetwork.describe` or
:meth:`DartsNetwork.describe` returns; ``kind`` says which:

* ``{"kind": "enas", "nas_config": {...}, "architecture": [[0], [1, 0]], "in_channels": 1,
  "height": 8, "width": 8, "num_classes": 10}``
* ``{"kind": "darts", "genotype": {...}, "in_channels": 1, "num_classes": 10,
  "init_channels": 16, "num_layers": 3, "stem_multiplier": 3}``

Inside a trial, :func:`record_result` merges it into the trial's ``outputs.json`` under
``"nas"`` (through :func:`automl.log_outputs`), so the controller stores it with the trial.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from torch import nn

from automl.errors import SpecError
from nas._darts import Genotype, build_darts_network
from nas._model import build_model
from search._nas_space import Architecture, NasSpace

__all__ = ["OUTPUT_KEY", "export_source", "rebuild_model", "record_result"]

#: The key of ``outputs.json`` that holds the found architecture.
OUTPUT_KEY = "nas"


def rebuild_model(description: Mapping[str, Any]) -> nn.Module:
    """Build the (untrained) network a description names.

    Raises:
        SpecError: Unknown ``kind`` or a description that does not build.
    """
    kind = description.get("kind")
    try:
        if kind == "enas":
            return build_model(
                NasSpace.from_katib(description["nas_config"]),
                Architecture.from_katib(description["architecture"]),
                in_channels=description.get("in_channels"),
                num_classes=description.get("num_classes"),
                height=description.get("height"),
                width=description.get("width"),
            )
        if kind == "darts":
            return build_darts_network(
                Genotype.from_dict(description["genotype"]),
                in_channels=int(description["in_channels"]),
                num_classes=int(description["num_classes"]),
                init_channels=int(description.get("init_channels", 16)),
                num_layers=int(description.get("num_layers", 3)),
                stem_multiplier=int(description.get("stem_multiplier", 3)),
            )
    except KeyError as exc:
        raise SpecError(f"misses {exc.args[0]!r}", path=OUTPUT_KEY) from None
    raise SpecError(f"kind must be 'enas' or 'darts'; got {kind!r}", path=f"{OUTPUT_KEY}.kind")


def export_source(description: Mapping[str, Any]) -> str:
    """Python source of a module whose ``build()`` rebuilds the described network.

    The source needs this package (``nas``) importable; the architecture is embedded as JSON.

    Raises:
        SpecError: The description does not build (checked before writing the source).
    """
    rebuild_model(description)
    data = json.dumps(dict(description), indent=2, sort_keys=True)
    kind = description.get("kind")
    extra = ""
    if kind == "darts":
        extra = f"\nGENOTYPE = {str(Genotype.from_dict(description['genotype']))!r}\n"
    elif kind == "enas":
        extra = f"\nARCHITECTURE = {json.dumps(description['architecture'])!r}\n"
    return (
        f'"""The {kind} network found by automl NAS; ``build()`` returns it untrained."""\n'
        "\n"
        "import json\n"
        "\n"
        "from torch import nn\n"
        "\n"
        "from nas import rebuild_model\n"
        "\n"
        f"DESCRIPTION = json.loads(r'''{data}''')\n"
        f"{extra}"
        "\n"
        "\n"
        "def build() -> nn.Module:\n"
        '    """The network, freshly initialised."""\n'
        "    return rebuild_model(DESCRIPTION)\n"
    )


def record_result(description: Mapping[str, Any], **extra: Any) -> bool:
    """Store the found architecture with the current trial (``outputs.json["nas"]``).

    Returns:
        True when stored; False outside a trial or where the trial has no artifact directory.
    """
    from automl._report import current_trial

    info = current_trial()
    if info is None or not info.artifact_dir:
        return False
    from automl._artifacts import log_outputs

    log_outputs(directory=info.artifact_dir, **{OUTPUT_KEY: {**description, **extra}})
    return True
