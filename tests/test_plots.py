"""automl.plots: Plotly figures of a result or a stored experiment, and the result's HTML."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest

import automl
from automl import plots
from automl._progress import NotebookProgress, ProgressBar, in_jupyter, progress_display


def curve(x: float, depth: int, kind: str) -> float:
    """Reports three intermediate values, returns the last."""
    value = (x - 0.3) ** 2 + depth / 10 + (0.5 if kind == "b" else 0.0)
    for step in range(1, 4):
        automl.report(step=step, objective=value + 1 / step)
    return value


SPACE = {
    "x": automl.double(0, 1),
    "depth": automl.int(1, 4),
    "kind": automl.categorical(["a", "b"]),
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> automl.TuneResult:
    tmp = tmp_path_factory.mktemp("plots")
    return automl.tune(
        curve,
        SPACE,
        max_trials=8,
        seed=3,
        algorithm="random",
        store=f"sqlite:///{tmp / 'p.db'}",
        name="plots",
    )


def test_history_has_values_and_best_so_far(result: automl.TuneResult) -> None:
    fig = plots.history(result)
    assert isinstance(fig, go.Figure)
    values, best = fig.data
    df = result.trials
    assert list(values.x) == list(df["number"])
    assert list(values.y) == pytest.approx(list(df["value"]))
    # The best-so-far line steps where the running minimum changes, and runs to the last trial.
    running_min = [min(df["value"][: i + 1]) for i in range(len(df))]
    changes = [i for i in range(len(df)) if i == 0 or running_min[i] != running_min[i - 1]]
    assert list(best.x) == [*changes, len(df) - 1] or list(best.x) == changes
    assert list(best.y) == pytest.approx([running_min[i] for i in best.x])
    assert best.line.shape == "hv"
    assert fig.layout.xaxis.tickformat == ",d" and fig.layout.xaxis.dtick == 1
    assert fig.layout.title.text == "Optimisation history: plots"
    # The same figure from the stored experiment by name, and from the result's method.
    with automl.Client(result.store_url or "") as client:
        by_name = plots.history("plots", client=client)
    assert list(by_name.data[0].y) == list(values.y)
    assert list(result.plot_history().data[1].y) == list(best.y)
    assert automl.plots.history is plots.history  # reachable after a plain `import automl`


def test_parallel_coordinates_one_dimension_per_parameter(result: automl.TuneResult) -> None:
    fig = result.plot_parallel_coordinates()
    [par] = fig.data
    labels = [d.label for d in par.dimensions]
    assert labels == ["x", "depth", "kind", "objective"]
    kind = par.dimensions[2]
    assert list(kind.ticktext) == ["a", "b"]  # categories as indexes with their names
    assert list(par.dimensions[3]["values"]) == pytest.approx(list(result.trials["value"]))


def test_importance_ranks_every_parameter(result: automl.TuneResult) -> None:
    fig = plots.importance(result)
    [bar] = fig.data
    assert sorted(bar.y) == ["depth", "kind", "x"]
    assert sum(bar.x) == pytest.approx(1.0)
    assert all(v >= 0 for v in bar.x)


def test_importance_with_too_few_trials_says_so(tmp_path: Path) -> None:
    res = automl.tune(curve, SPACE, max_trials=1, seed=0, store=str(tmp_path / "one.db"))
    fig = res.plot_importance()
    assert fig.layout.title.text.endswith("needs 2 or more succeeded trials")
    assert list(fig.data[0].x) == []


def test_intermediate_values_one_line_per_trial(result: automl.TuneResult) -> None:
    fig = result.plot_intermediate_values()
    assert len(fig.data) == 8
    first = fig.data[0]
    assert first.name == "trial 0"
    final = result.trials["value"][0]
    # Three reports of value + 1/step, then the return value (step-less: drawn as the next step).
    assert list(first.x) == [1.0, 2.0, 3.0, 4.0]
    assert list(first.y) == pytest.approx([final + 1, final + 0.5, final + 1 / 3, final])


def test_summary_html_and_repr(result: automl.TuneResult) -> None:
    page = result._repr_html_()
    assert page.startswith("<table class='automl-result'>")
    assert f"{result.best_value:.6g}" in page
    assert "8: 8 succeeded" in page
    assert "kind" in page and "&lt;" not in page
    assert "TuneResult(name='plots'" in repr(result)


def test_progress_display_outside_jupyter_is_a_terminal_bar() -> None:
    from automl.core import ExperimentSpec, Objective, Parameter, TrialTemplate

    assert not in_jupyter()
    spec = ExperimentSpec(
        name="p",
        objective=Objective(type="minimize", metric="objective"),
        parameters=(Parameter(name="x", type="double", min=0.0, max=1.0),),
        trial_template=TrialTemplate(function="m:f"),
        source="python",
    )
    assert isinstance(progress_display(spec), ProgressBar)
    assert not isinstance(progress_display(spec), NotebookProgress)


def test_progress_is_on_in_a_terminal_and_off_when_piped() -> None:
    import io

    from automl._progress import progress_wanted

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_wanted(None, Tty()) is True
    assert progress_wanted(None, io.StringIO()) is False  # piped or redirected
    assert progress_wanted(False, Tty()) is False and progress_wanted(True, io.StringIO())


def test_no_iprogress_warning_from_optuna_in_a_kernel() -> None:
    import subprocess
    import sys

    # tqdm.auto (which optuna imports) warns "IProgress not found" in a Jupyter kernel without
    # ipywidgets. A fake kernel: IPython's get_ipython() has an IPKernelApp config, and
    # ipywidgets cannot be imported.
    fake_kernel = (
        "import sys, types, warnings\n"
        "ip = types.ModuleType('IPython')\n"
        "class Shell:\n    config = {'IPKernelApp': {}}\n"
        "ip.get_ipython = lambda: Shell()\n"
        "sys.modules['IPython'] = ip\n"
        "sys.modules['ipywidgets'] = None\n"
        "sys.modules['ipykernel.zmqshell'] = types.ModuleType('ipykernel.zmqshell')\n"
        "warnings.simplefilter('default')\n"
    )
    probe = (
        "with warnings.catch_warnings(record=True) as w:\n"
        "    {first}\n"
        "    import optuna\n"
        "print(sum('IProgress' in str(x.message) for x in w))\n"
    )
    # Without automl's filter the warning shows (the fake kernel works) ...
    plain = fake_kernel + probe.format(first="pass")
    out = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True)
    assert out.stdout.strip() == "1", out.stderr[-2000:]
    # ... and with `import automl` first it does not.
    ours = fake_kernel + probe.format(first="import automl")
    out = subprocess.run([sys.executable, "-c", ours], capture_output=True, text=True)
    assert out.stdout.strip() == "0", out.stderr[-2000:]


def test_notebook_figures_keep_a_static_svg(
    result: automl.TuneResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved notebook keeps an SVG next to the interactive figure (GitHub, nbconvert)."""
    import plotly.io as pio

    from automl.plots import static_svg

    # What Jupyter uses (outside a kernel plotly renders to nothing).
    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype+notebook_connected")
    fig = plots.history(result)
    bundle = fig._repr_mimebundle_()
    assert "application/vnd.plotly.v1+json" in bundle and "text/html" in bundle
    svg = bundle.get("image/svg+xml")
    assert svg is not None and svg.lstrip().startswith("<svg"), static_svg(fig)
    assert "Optimisation history: plots" in svg  # the chart itself, not an empty frame
    monkeypatch.setenv("AUTOML_PLOTS_STATIC", "0")
    assert "image/svg+xml" not in plots.importance(result)._repr_mimebundle_()
