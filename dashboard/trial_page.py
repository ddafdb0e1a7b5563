"""The dashboard's trial page, and the outputs and architecture sections it shares."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import plots
from dashboard.widgets import AnyQueries, chart, fmt, link, metrics_table, params_table, summaries

__all__ = ["architecture", "artifacts_line", "log_tail", "outputs_section", "page_trial"]


def artifacts_line(outputs: dict[str, Any]) -> str | None:
    """``name (format), ... in <dir>`` (or a file count), as ``automl show`` says it."""
    where = outputs.get("artifact_dir")
    if not where:
        return None
    models = outputs.get("models") or {}
    files = outputs.get("files") or []
    what = (
        ", ".join(f"{n} ({m.get('format', '?')})" for n, m in models.items())
        or f"{len(files)} file(s)"
    )
    return f"{what} in `{where}`"


def outputs_section(outputs: dict[str, Any]) -> None:
    """A trial's outputs: artifact directory, saved models, files and data (outputs.json)."""
    st.subheader("Outputs")
    if not outputs:
        st.caption("This trial saved no artifacts.")
        return
    where = outputs.get("artifact_dir")
    if where:
        st.markdown(f"Artifact directory: `{where}`")
    models = outputs.get("models") or {}
    if models:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "model": name,
                        "format": meta.get("format"),
                        "class": meta.get("class"),
                        "file": meta.get("file"),
                    }
                    for name, meta in models.items()
                ]
            ),
            hide_index=True,
            width="stretch",
            key="trial_models",
        )
    files = outputs.get("files") or []
    if files:
        with st.expander(f"Files ({len(files)})"):
            st.code("\n".join(str(f) for f in files), language=None)
    data = outputs.get("data")
    if data:
        with st.expander("Data (outputs.json)"):
            st.json(data)


def architecture(spec: Any, record: Any, key: str) -> None:
    """A NAS trial's architecture: operations per layer and their inputs, or the DARTS genotype."""
    from automl._nas_view import architecture_rows, found_architecture

    found = found_architecture(spec, record)
    if found is None:
        return
    darts = found["kind"] == "darts"
    st.subheader(f"Genotype of {record.id} (DARTS)" if darts else f"Architecture of {record.id}")
    st.dataframe(
        pd.DataFrame(architecture_rows(spec, found)), hide_index=True, width="stretch", key=key
    )
    if darts and found.get("genotype_str"):
        st.code(str(found["genotype_str"]), language=None)


def log_tail(workdir: str | None, lines: int = 200) -> str | None:
    """The last ``lines`` lines of a trial's ``trial.log`` (its last 64 kB), or None."""
    if not workdir:
        return None
    path = Path(workdir) / "trial.log"
    if not path.is_file():
        return None
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64_000))
        data = f.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])


def page_trial(q: AnyQueries, cfg: argparse.Namespace, trial_id: str) -> None:
    """One trial: params, curves, state, log tail, where it ran."""
    t = q.trial(trial_id)
    st.title(f"Trial {trial_id}")
    if t is None:
        st.error(f"No trial {trial_id!r} in this store.")
        return
    st.markdown(f"[Experiment {t['experiment']}]({link(experiment=t['experiment'])})")
    running = t["state"] in ("Created", "Running")

    @st.fragment(run_every=cfg.refresh if running else None)
    def live() -> None:
        tr = q.trial(trial_id) or t
        c = st.columns(4)
        c[0].metric("State", tr["state"])
        c[1].metric("Value", fmt(tr["value"]))
        c[2].metric("Number", tr["number"])
        strategy = (tr.get("attrs") or {}).get("strategy")
        if strategy:
            st.caption(f"proposed by `auto`'s {strategy} strategy")
        dur = (
            None
            if tr["started_at"] is None or tr["finished_at"] is None
            else tr["finished_at"] - tr["started_at"]
        )
        c[3].metric("Duration (s)", fmt(dur))
        if tr["message"]:
            if tr["state"] == "Succeeded":
                st.caption(tr["message"])
            else:
                st.warning(tr["message"])
        c1, c2 = st.columns([2, 3])
        c1.subheader("Parameters")
        c1.table(params_table(tr["params"]).set_index("parameter"))
        c2.subheader("Metrics")
        c2.table(metrics_table(summaries(tr["record"]), tr["spec"]).set_index("metric"))
        obs = q.trial_observations(trial_id)
        if obs:
            chart(plots.trial_curves_figure(obs), "tc")
        st.subheader("Where it ran")
        runner = dict(tr["runner"])
        st.json(runner or {"runner": "in-process"})
        tail = log_tail(runner.get("workdir"))
        if tail is not None:
            st.subheader("Log (tail)")
            st.code(tail or "(empty)", language=None)
        architecture(tr["spec"], tr["record"], "trial_architecture")
        outputs_section(tr["outputs"])
        if tr["attrs"]:
            with st.expander("Algorithm attributes"):
                st.json(tr["attrs"])

    live()
