"""Notebook trials: a Jupyter notebook run with papermill as a trial's process.

``trial: {notebook: train.ipynb}`` becomes the command ``python -m trials._notebook NOTEBOOK``,
run by the local process executor like any other trial, so it gets the same metrics collection,
timeout, stop and kill (the kernel lives in the trial's process group). This module's
:func:`main` reads the trial's parameters from ``AUTOML_TRIAL``, has papermill inject them after
the cell tagged ``parameters`` and executes the notebook on a Python kernel of this interpreter.
The kernel inherits the trial's environment, so ``automl.report`` and ``automl.save_model``
inside the notebook work as in a script; its stdout streams to the trial's stdout as it runs, so
``name=value`` lines reach the StdOut collector. The executed notebook is kept at
``<trial dir>/artifacts/executed.ipynb``.

papermill, nbformat and ipykernel are imported only here, when a notebook is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from automl.errors import SpecError

__all__ = [
    "EXECUTED_NAME",
    "KERNEL_NAME",
    "main",
    "notebook_command",
    "run_notebook",
    "validate_notebook",
]

EXECUTED_NAME = "executed.ipynb"
KERNEL_NAME = "automl-python"  # a kernelspec written per run that points at this interpreter
_EXTRA = "pip install 'automl[notebooks]'"


def _nbformat() -> Any:
    try:
        import nbformat
    except ImportError as exc:
        raise SpecError(
            f"notebook trials need nbformat and papermill: {_EXTRA}", path="trial.notebook"
        ) from exc
    return nbformat


def validate_notebook(
    path: str | Path, parameters: Sequence[str] = (), field: str = "trial.notebook"
) -> list[str]:
    """Check a notebook can be a trial, before any trial starts.

    It must exist, parse as a notebook, be a Python notebook (or say no language at all), and
    have a cell tagged ``parameters`` (papermill injects the trial's values after it).

    Args:
        path: The notebook file.
        parameters: The experiment's parameter names.
        field: The spec field to name in errors.

    Returns:
        Warnings: parameters the ``parameters`` cell does not define (papermill injects them
        anyway, but the notebook then has no default for them).

    Raises:
        SpecError: The notebook is missing, unreadable, not Python, or has no parameters cell.
    """
    nbformat = _nbformat()
    nb_path = Path(path)
    if not nb_path.is_file():
        raise SpecError(f"must be an existing notebook file; got {str(nb_path)!r}", path=field)
    try:
        nb = nbformat.read(str(nb_path), as_version=4)
    except Exception as exc:  # nbformat raises JSON, validation and reader errors
        raise SpecError(
            f"is not a readable Jupyter notebook ({type(exc).__name__}: {exc}); "
            f"got {str(nb_path)!r}",
            path=field,
        ) from exc
    language = (
        nb.metadata.get("kernelspec", {}).get("language")
        or nb.metadata.get("language_info", {}).get("name")
        or "python"
    )
    if str(language).lower() != "python":
        raise SpecError(
            f"must be a Python notebook (it runs on a Python kernel); {nb_path.name} is "
            f"{language!r}",
            path=field,
        )
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise SpecError(
            f"{nb_path.name} has no cell tagged 'parameters': tag the cell that sets the "
            "default values (Jupyter: View > Cell Toolbar > Tags, add 'parameters'), so the "
            "trial's values can be injected after it",
            path=field,
        )
    source = "\n".join(str(c.source) for c in cells)
    defined = set(re.findall(r"^\s*([A-Za-z_]\w*)\s*(?::[^=\n]*)?=", source, re.MULTILINE))
    missing = [p for p in parameters if p not in defined]
    if not missing:
        return []
    return [
        f"{field}: the parameters cell of {nb_path.name} does not set "
        f"{', '.join(missing)}; papermill injects them anyway"
    ]


def notebook_command(notebook: str | Path) -> tuple[str, ...]:
    """The argv of a notebook trial: this interpreter running :func:`main` on the notebook."""
    return (sys.executable, "-m", "trials._notebook", str(notebook))


def _write_kernelspec(root: Path) -> None:
    """A kernelspec for this interpreter, so the kernel sees the same packages as the trial."""
    kdir = root / "kernels" / KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "automl (this Python)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (kdir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")


def run_notebook(
    notebook: str | Path,
    output: str | Path,
    parameters: Mapping[str, Any],
    cwd: str | Path,
    kernel_dir: str | Path | None = None,
    echo: bool = True,
) -> None:
    """Execute a notebook with papermill on a kernel of this interpreter.

    Args:
        notebook: The notebook to run.
        output: Where the executed notebook is written (also when a cell fails).
        parameters: Values injected after the cell tagged ``parameters``.
        cwd: The kernel's working directory.
        kernel_dir: Where to write the kernelspec (a temporary directory if None).
        echo: Stream the kernel's stdout and stderr to this process's as cells run.

    Raises:
        ImportError: papermill is not installed.
        papermill.PapermillExecutionError: A cell raised.
    """
    import papermill  # type: ignore[import-untyped]  # no type information

    with contextlib.ExitStack() as stack:
        if kernel_dir is None:
            kernel_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="automl-kernel-"))
        kroot = Path(kernel_dir)
        _write_kernelspec(kroot)
        # jupyter_client reads JUPYTER_PATH when it looks the kernel up; restored afterwards.
        before = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(kroot), before) if p)
        try:
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=dict(parameters),
                kernel_name=KERNEL_NAME,
                language="python",
                cwd=str(cwd),
                progress_bar=False,
                stdout_file=sys.stdout if echo else None,
                stderr_file=sys.stderr if echo else None,
            )
        finally:
            if before is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = before


def _params() -> dict[str, Any]:
    raw = os.environ.get("AUTOML_TRIAL")
    if not raw:
        return {}
    params = json.loads(raw).get("params", {})
    return dict(params) if isinstance(params, dict) else {}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a notebook as the current trial (``python -m trials._notebook NB [OUTPUT]``).

    Returns:
        0 when every cell ran, 1 when a cell raised (its error is printed), 2 on bad usage.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or len(args) > 2:
        print("usage: python -m trials._notebook NOTEBOOK [OUTPUT]", file=sys.stderr)
        return 2
    notebook = Path(args[0]).resolve()
    if len(args) == 2:
        output = Path(args[1])
    else:
        base = os.environ.get("AUTOML_ARTIFACT_DIR") or os.environ.get("AUTOML_TRIAL_DIR")
        output = Path(base or ".") / EXECUTED_NAME
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        import papermill
    except ImportError:
        print(f"notebook trials need papermill: {_EXTRA}", file=sys.stderr)
        return 2
    # The kernelspec lives outside the artifact directory: it is plumbing, not a result.
    trial_dir = os.environ.get("AUTOML_TRIAL_DIR")
    kroot = Path(trial_dir) / ".jupyter" if trial_dir else None
    params = _params()
    print(f"[automl] running {notebook.name} with papermill; parameters {params}", flush=True)
    try:
        run_notebook(notebook, output, params, os.getcwd(), kernel_dir=kroot)
    except papermill.PapermillExecutionError as exc:
        print(
            f"[automl] cell {exc.exec_count} of {notebook.name} raised {exc.ename}: "
            f"{exc.evalue}; executed notebook: {output}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    print(f"[automl] executed notebook: {output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
