"""The automl dashboard (Streamlit).

Start it with::

    streamlit run dashboard/app.py --server.address 127.0.0.1 -- --store sqlite:///automl.db \
        [--read-only] [--allow-remote-actions]

or set ``AUTOML_STORE`` (and ``AUTOML_READ_ONLY=1`` / ``AUTOML_ALLOW_REMOTE_ACTIONS=1``).

Pages are linkable through query parameters: ``?experiment=NAME``, ``?trial=ID``,
``?page=compare`` and ``?page=steer``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

# ``streamlit run dashboard/app.py`` puts dashboard/ first on sys.path, not the project root.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from automl.core import observed_space  # noqa: E402
from automl.store import DEFAULT_STORE, Store  # noqa: E402
from dashboard import plots  # noqa: E402
from dashboard.pace import preload_plotly  # noqa: E402
from dashboard.pareto import pareto_section  # noqa: E402
from dashboard.queries import SORT_KEYS, ExperimentSummary, Queries  # noqa: E402
from dashboard.remote import RemoteError, RemoteQueries  # noqa: E402
from dashboard.steer import steer_experiment  # noqa: E402
from dashboard.trial_page import architecture as _architecture  # noqa: E402
from dashboard.trial_page import artifacts_line as _artifacts_line  # noqa: E402
from dashboard.trial_page import page_trial  # noqa: E402
from dashboard.widgets import CSS as _CSS  # noqa: E402
from dashboard.widgets import AnyQueries, metrics_table, params_table  # noqa: E402
from dashboard.widgets import chart as _chart  # noqa: E402
from dashboard.widgets import fmt as _fmt  # noqa: E402
from dashboard.widgets import link as _link  # noqa: E402
from dashboard.widgets import summaries as _summaries  # noqa: E402

REFRESH_S = 3.0
PAGE_SIZE = 50
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_TRUE = {"1", "true", "yes", "on"}
_STATES = [
    "Created",
    "Running",
    "Succeeded",
    "Failed",
    "Killed",
    "EarlyStopped",
    "MetricsUnavailable",
    "Preempted",
]


# -- configuration -------------------------------------------------------------------------------
def config(argv: list[str] | None = None) -> argparse.Namespace:
    """Store URL and flags from the script's argv (after ``--``), then the environment."""
    parser = argparse.ArgumentParser(prog="automl dashboard", add_help=False)
    parser.add_argument("--store", default=None)
    parser.add_argument("--server", default=None)
    parser.add_argument("--token", default=None)
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--allow-remote-actions", action="store_true")
    parser.add_argument("--refresh", type=float, default=None)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    env = os.environ
    args.error = ""
    if args.server and args.store:
        args.error = "Give --store or --server, not both."
    args.server = args.server or (None if args.store else env.get("AUTOML_SERVER")) or None
    args.token = args.token or env.get("AUTOML_TOKEN") or None
    args.store = args.store or env.get("AUTOML_STORE") or DEFAULT_STORE
    args.read_only = args.read_only or env.get("AUTOML_READ_ONLY", "").lower() in _TRUE
    args.allow_remote_actions = (
        args.allow_remote_actions or env.get("AUTOML_ALLOW_REMOTE_ACTIONS", "").lower() in _TRUE
    )
    if args.refresh is None:
        args.refresh = float(env.get("AUTOML_DASHBOARD_REFRESH", REFRESH_S))
    return args


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


@st.cache_resource(show_spinner=False)
def _remote(server: str, token: str | None) -> RemoteQueries:
    return RemoteQueries(server, token)


def _source(q: AnyQueries) -> tuple[str, str, str | None]:
    """``(kind, url, token)`` that :func:`_open` turns back into the same queries."""
    if isinstance(q, RemoteQueries):
        return "server", q.server, q.token
    return "store", q.store.url.render_as_string(False), None


def _open(kind: str, url: str, token: str | None) -> AnyQueries:
    return _remote(url, token) if kind == "server" else Queries(_store(url))


def _client(q: AnyQueries) -> Any:
    """The :class:`automl.Client` the actions use: on the server with the token, or the store."""
    from automl import Client

    if isinstance(q, RemoteQueries):
        return Client(server=q.server, token=q.token or "")
    return Client(q.store)


def _client_is_local() -> bool:
    """Whether the browser connects over loopback (None, as in tests, counts as local)."""
    try:
        ip = st.context.ip_address
    except Exception:  # pragma: no cover - older Streamlit
        return True
    return ip is None or ip in _LOOPBACK or ip.startswith("127.")


def actions_allowed(cfg: argparse.Namespace) -> tuple[bool, str]:
    """Whether mutating actions may be offered, and why not."""
    if cfg.read_only:
        return False, "The dashboard is read-only (--read-only)."
    if not _client_is_local() and not cfg.allow_remote_actions:
        return False, "Actions are offered only on 127.0.0.1 (see --allow-remote-actions)."
    return True, ""


# -- experiments page -------------------------------------------------------------------------
def _experiments_table(df: pd.DataFrame, key: str) -> None:
    """Experiment summary rows as a table that fits a 1,400 px window.

    The three trial counts share a column and the direction goes with the algorithm; when a
    narrower window scrolls, the name column stays put (pinned).
    """
    df = df.copy()
    df.insert(1, "open", [_link(experiment=n) for n in df["name"]])
    df["run / fail / stop"] = [
        f"{r} / {f} / {e}"
        for r, f, e in zip(df["running"], df["failed"], df["early_stopped"], strict=True)
    ]
    df["algorithm"] = [
        f"{a} · {d[:3]}" for a, d in zip(df["algorithm"], df["direction"], strict=True)
    ]
    df = df[
        [
            "name",
            "open",
            "status",
            "reason",
            "algorithm",
            "progress",
            "run / fail / stop",
            "best",
            "started",
            "elapsed_s",
        ]
    ]
    df["started"] = df["started"].str.slice(5, 16)  # MM-DD HH:MM
    st.dataframe(
        df,
        hide_index=True,
        width="stretch",
        column_config={
            "name": st.column_config.TextColumn("name", width=170, pinned=True),
            "open": st.column_config.LinkColumn("open", display_text="open", width=50),
            "status": st.column_config.TextColumn("status", width=90),
            "reason": st.column_config.TextColumn("reason", width=180),
            "algorithm": st.column_config.TextColumn("algorithm", width=110),
            "progress": st.column_config.TextColumn("progress", width=80),
            "run / fail / stop": st.column_config.TextColumn("run / fail / stop", width=110),
            "best": st.column_config.NumberColumn("best", format="%.6g", width=80),
            "started": st.column_config.TextColumn("started", width=95),
            "elapsed_s": st.column_config.NumberColumn("elapsed_s", width=75),
        },
        key=key,
    )


def page_experiments(q: AnyQueries) -> None:
    """Every experiment with its status and progress; filter and sort."""
    st.title("Experiments")
    summaries = q.experiments_summary()
    if not summaries:
        st.info(
            "No experiments in this store yet. Submit one on the Steer page or run `automl run`."
        )
        return
    df = pd.DataFrame([s.row() for s in summaries])
    c1, c2, c3 = st.columns([2, 2, 1])
    states = c1.multiselect("Status", sorted(df["status"].unique()), key="exp_status")
    text = c2.text_input("Name contains", key="exp_filter")
    sort = c3.selectbox(
        "Sort by", ["started", "name", "status", "best", "elapsed_s"], key="exp_sort"
    )
    if states:
        df = df[df["status"].isin(states)]
    if text:
        df = df[df["name"].str.contains(text, case=False, regex=False)]
    df = df.sort_values(sort, ascending=sort in ("name", "status"), na_position="last")
    _experiments_table(df, "experiments_table")
    st.caption(f"{len(df)} of {len(summaries)} experiments")


# -- experiment page ------------------------------------------------------------------------
def _header(exp: ExperimentSummary) -> None:
    c = st.columns(5)
    strategy = exp.spec.objective.strategy(exp.metric).value
    c[0].metric(
        f"Best {exp.metric} ({exp.direction})",
        _fmt(exp.best_value),
        help=f"Each trial's {exp.metric} is the {strategy} of its observations "
        "(the spec's metric strategy).",
    )
    c[1].metric("Status", exp.state, help=exp.reason or None)
    c[2].metric("Progress", f"{exp.done}/{exp.max_trials or '-'}")
    c[3].metric("Running", exp.counts.get("Running", 0))
    failed = exp.counts.get("Failed", 0) + exp.counts.get("MetricsUnavailable", 0)
    c[4].metric("Failed / early-stopped", f"{failed} / {exp.counts.get('EarlyStopped', 0)}")
    if exp.reason:
        st.caption(f"{exp.reason}: {exp.message}" if exp.message else exp.reason)


def _trials_table(q: AnyQueries, exp: ExperimentSummary) -> None:
    st.subheader("Trials")
    c1, c2, c3, c4 = st.columns([3, 2, 1, 2])
    states = c1.multiselect("State", _STATES, key="trial_states")
    sort = c2.selectbox("Sort by", list(SORT_KEYS), key="trial_sort")
    desc = c3.toggle("Desc", key="trial_desc")
    search = c4.text_input("Search params / id", key="trial_search")
    size = PAGE_SIZE
    first = q.trials_page(exp.id, states, sort, desc, 0, 1, search or None)
    pages = max(1, -(-first.total // size))
    page = int(st.number_input("Page", 1, pages, 1, key="trial_page")) if pages > 1 else 1
    res = q.trials_page(exp.id, states, sort, desc, (page - 1) * size, size, search or None)
    rows = []
    proposed = any(r["strategy"] for r in res.rows)  # `auto`: which strategy proposed each
    invalid = any(r["invalidated"] for r in res.rows)  # marked by hand: shown struck out
    for r in res.rows:
        skip = ("params", "metrics") if proposed else ("params", "metrics", "strategy")
        skip += () if invalid else ("invalidated",)
        row = {k: v for k, v in r.items() if k not in skip}
        row["open"] = _link(trial=r["id"])
        row.update({f"param.{k}": v for k, v in r["params"].items()})
        row.update({f"metric.{k}": v for k, v in r["metrics"].items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    struck = frame.style.apply(  # invalidated trials (automl invalidate) are struck out
        lambda r: ["text-decoration: line-through" if r.get("invalidated") else ""] * len(r),
        axis=1,
    )
    st.dataframe(
        struck if invalid else frame,
        hide_index=True,
        width="stretch",
        column_config={"open": st.column_config.LinkColumn("open", display_text="open")},
    )
    st.caption(f"page {page}/{pages}, {res.total} trials match")


def _best_trial(q: AnyQueries, e: ExperimentSummary) -> None:
    best = q.best_trial(e.id, e.direction)
    if best is None:
        return
    st.subheader(f"Best trial {best['number']}")
    st.markdown(f"[{best['id']}]({_link(trial=best['id'])})")
    c1, c2 = st.columns([2, 3])
    c1.table(params_table(best["params"]).set_index("parameter"))
    c2.table(metrics_table(_summaries(best["record"]), e.spec).set_index("metric"))
    artifacts = _artifacts_line(best["outputs"])
    if artifacts:
        st.markdown(f"Best trial's artifacts: {artifacts}")
    _architecture(e.spec, best["record"], "best_architecture")


def _curves(
    q: AnyQueries, exp: ExperimentSummary, metric: str, hist: list[Any], all_: bool
) -> None:
    key = f"curves:{exp.id}:{metric}:{all_}"
    view = plots.curves_view(q, exp, metric, hist, st.session_state.get(key), all_)
    st.session_state[key] = view.cache  # the next refresh reads only what is new
    if not view.lines.points:
        st.caption(f"No intermediate values of {metric} reported.")
        return
    fig = plots.curves_figure(view, metric, None if all_ else plots.MAX_POINTS)
    _chart(fig, f"curves_{metric}")


@st.cache_resource(show_spinner=False, max_entries=8)
def _plot_rows(source: tuple[str, str, str | None], exp_id: str, version: str) -> list[Any]:
    """Succeeded and early-stopped trials' ``(number, params, value, state)``.

    Read once per change of the experiment's trial counts (``version``) and shared, read-only,
    by the search-space charts and the importance.
    """
    return _open(*source).params_values(exp_id, ("Succeeded", "EarlyStopped"))


@st.cache_data(show_spinner=False, max_entries=32)
def _importances(
    source: tuple[str, str, str | None], exp_id: str, version: str, spec_json: str
) -> dict[str, float]:
    from automl.core import ExperimentSpec

    rows = [r for r in _plot_rows(source, exp_id, version) if r[3] == "Succeeded"]
    return plots.param_importances(rows, ExperimentSpec.from_json(spec_json), max_trials=1000)


def _search_space(q: AnyQueries, exp: ExperimentSummary, all_: bool) -> None:
    spec = exp.spec
    if spec.nas_config is not None:
        st.info(
            "Neural architecture search: trials evaluate sampled architectures; parameter plots "
            "show the architecture choices the algorithm exposes, if any."
        )
    url = _source(q)
    version = ",".join(f"{k}={v}" for k, v in sorted(exp.counts.items()))
    rows = _plot_rows(url, exp.id, version)
    if spec.define_by_run:  # the objective defined the space: chart what the trials used
        spec = spec.model_copy(update={"parameters": observed_space(spec, (r[1] for r in rows))})
    if not rows or not spec.parameters:
        return
    limit = None if all_ else plots.MAX_POINTS
    st.subheader("Search space")
    _chart(plots.parallel_lines_figure(rows, spec, None if all_ else plots.MAX_LINES), "par")
    imp = _importances(url, exp.id, version, spec.to_json())
    if imp:
        _chart(plots.importance_figure(imp), "imp")
    else:
        st.caption("Parameter importance needs at least 2 succeeded trials.")
    names = [p.name for p in spec.parameters]
    p = st.selectbox("Slice parameter", names, key="slice_param")
    if p:
        _chart(plots.slice_figure(rows, spec, p, limit), "slice")
    if len(names) >= 2:
        c1, c2 = st.columns(2)
        px = c1.selectbox("Contour x", names, index=0, key="contour_x")
        py = c2.selectbox("Contour y", names, index=1, key="contour_y")
        if px and py and px != py:
            fig = plots.contour_figure(rows, spec, px, py, None if all_ else plots.CONTOUR_POINTS)
            _chart(fig, "contour")


def page_experiment(q: AnyQueries, cfg: argparse.Namespace, name: str) -> None:
    """One experiment: best trial, trials, plots, spec.

    While it runs, a fragment refreshes the header, the best trial, the charts and the trials
    table every ``cfg.refresh`` seconds (a toggle pauses it). Widgets keep their keys
    (selections survive), the page is not rebuilt (the scroll position stays), and a chart whose
    data did not change keeps its zoom (``uirevision``). Streamlit remounts a chart whose figure
    changed, so its zoom resets: pausing the refresh keeps it.
    """
    exp = q.experiment(name)
    st.title(f"Experiment {name}")
    if exp is None:
        st.error(f"No experiment named {name!r} in this store.")
        return
    st.markdown(f"[All experiments]({_link()}) · {exp.algorithm} · {exp.direction} {exp.metric}")
    running = exp.state in ("Created", "Running")
    all_ = st.toggle(
        "Draw every trial",
        key="draw_all",
        help="Charts draw the best trials plus a sample above a few hundred; this draws all "
        "of them (slow in the browser for thousands of trials).",
    )

    if running:
        refresh = st.toggle(
            f"Live refresh (every {cfg.refresh:g} s)",
            value=True,
            key="live_refresh",
            help="A chart whose data changed is redrawn, which resets its zoom: pause the "
            "refresh to explore a chart.",
        )
        running = bool(refresh)

    @st.fragment(run_every=cfg.refresh if running else None)
    def live() -> None:
        e = q.experiment(name) or exp
        _header(e)
        _best_trial(q, e)
        hist = q.history(e.id)
        if hist:
            fig = plots.history_figure(hist, e.direction, None if all_ else plots.MAX_POINTS)
            _chart(fig, "history")
        pareto_section(q, e, _chart)  # several objectives, constraints
        metrics = [e.metric, *e.spec.objective.additional_metrics]
        metric = st.selectbox("Intermediate values of", metrics, key="curve_metric")
        _curves(q, e, metric or e.metric, hist, all_)
        _trials_table(q, e)
        _search_space(q, e, all_)

    live()
    spec = exp.spec
    lineage = q.lineage(exp.id) if spec.algorithm.name == "pbt" else []
    if lineage:
        st.subheader("PBT lineage")
        _chart(plots.lineage_figure(lineage), "lineage")
    # Drawn on request: a code block costs the browser a syntax highlighter on every load.
    if st.toggle("Show the spec (YAML)", key="show_spec"):
        import yaml

        st.code(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), language="yaml")


# -- compare ----------------------------------------------------------------------------------
def page_compare(q: AnyQueries) -> None:
    """History and best values of several experiments on one chart."""
    st.title("Compare experiments")
    summaries = q.experiments_summary()
    names = [s.name for s in summaries]
    default = names[-2:] if len(names) >= 2 else names
    chosen = st.multiselect("Experiments", names, default=default, key="compare")
    if len(chosen) < 2:
        st.info("Choose two or more experiments.")
        return
    by_name = {s.name: s for s in summaries}
    hists = {n: (q.history(by_name[n].id), by_name[n].direction) for n in chosen}
    metrics = {n: by_name[n].metric for n in chosen}
    directions = {n: by_name[n].direction for n in chosen}
    if len(set(directions.values())) > 1:
        st.info(
            "These experiments minimise and maximise: their values are drawn on separate axes, "
            "one per direction, never on one."
        )
    _chart(plots.compare_figure(hists, metrics), "compare_hist")
    if len(set(directions.values())) == 1:
        best = {n: by_name[n].best_value for n in chosen}
        fig = plots.best_bar_figure(best, directions)
        _chart(fig, "compare_best")
    _experiments_table(pd.DataFrame([by_name[n].row() for n in chosen]), "compare_table")


# -- steer ------------------------------------------------------------------------------------
def _specs_dir() -> Path:
    d = Path(os.environ.get("AUTOML_DASHBOARD_SPECS", ".automl-dashboard"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def launch(argv: list[str], log: Path) -> int:
    """Start the controller as a detached subprocess (output to ``log``); returns its pid."""
    import subprocess

    kwargs: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
    if os.name == "posix":
        kwargs["start_new_session"] = True
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, **kwargs).pid


def page_steer(q: AnyQueries, cfg: argparse.Namespace) -> None:
    """Submit, stop, resume, raise the budget of, delete experiments."""
    from automl.errors import AutoMLError, SpecError
    from automl.spec import parse_spec

    st.title("Steer")
    ok, why = actions_allowed(cfg)
    if not ok:
        st.warning(why)
        return
    remote = isinstance(q, RemoteQueries)
    url = "" if remote else q.store.url.render_as_string(hide_password=False)
    client = _client(q)

    st.header("Submit an experiment")
    up = st.file_uploader("Upload YAML", type=["yaml", "yml", "json"], key="upload")
    if up is not None and st.session_state.get("uploaded") != up.name:
        st.session_state["uploaded"] = up.name
        st.session_state["spec_text"] = up.getvalue().decode("utf-8", "replace")
    text = st.text_area("Experiment YAML", height=260, key="spec_text")
    spec = None
    if text and text.strip():
        try:
            spec = parse_spec(text)
        except SpecError as exc:
            st.error("The spec is invalid:")
            st.dataframe(
                pd.DataFrame([{"path": i.path, "problem": i.message} for i in exc.issues]),
                hide_index=True,
                width="stretch",
            )
        else:
            st.success(
                f"Valid: {spec.name} ({spec.algorithm.name}, {len(spec.parameters)} parameters, "
                f"maxTrialCount {spec.max_trial_count})"
            )
    if st.button("Submit to the queue", disabled=spec is None, key="submit"):
        try:  # queued in the store: an `automl worker` (or `automl server --workers N`) runs it
            rec = client.submit(spec)
        except AutoMLError as exc:
            st.error(str(exc))
        else:
            st.success(
                f"Queued [{rec.name}]({_link(experiment=rec.name)}) ({rec.state.value}): "
                "a worker on this store (automl worker) runs it"
            )

    st.header("Act on an experiment")
    summaries = q.experiments_summary()
    if not summaries:
        st.info("No experiments yet.")
        return
    names = [s.name for s in summaries]
    pre = st.query_params.get("experiment")
    name = st.selectbox(
        "Experiment", names, index=names.index(pre) if pre in names else 0, key="steer_exp"
    )
    exp = next(s for s in summaries if s.name == name)
    st.caption(f"{exp.state} {exp.reason} · {exp.done}/{exp.max_trials or '-'} trials")

    def start(which: str) -> str:
        argv = [sys.executable, "-m", "automl", "resume", which, "--store", url, "--no-progress"]
        log = _specs_dir() / f"{which}-resume-{int(time.time())}.log"
        return f"controller pid {launch(argv, log)} (log {log})"

    c1, c2 = st.columns(2)
    if c1.button("Stop", key="stop", disabled=exp.state not in ("Created", "Running")):
        try:
            rec = client.stop(name)
            st.success(f"Stop requested: {rec.state.value}")
        except AutoMLError as exc:
            st.error(str(exc))
    if c2.button("Resume", key="resume", disabled=exp.state == "Running"):
        try:
            if remote:  # back to the server's queue: one of its workers continues it
                rec = client.requeue(name)
            else:
                client.prepare_resume(name)
        except AutoMLError as exc:
            st.error(str(exc))
        else:
            st.success(f"Resuming: {rec.state.value} (queued)" if remote else start(name))
    steer_experiment(client, name)
    confirm = st.checkbox(f"Yes, delete {name} and all its trials", key="confirm_delete")
    if st.button("Delete", key="delete", disabled=not confirm):
        try:
            client.delete(name)
            st.success(f"Deleted {name}")
        except AutoMLError as exc:
            st.error(str(exc))


# -- main -------------------------------------------------------------------------------------
def main() -> None:
    """Route on query params: ?experiment=, ?trial=, ?page=compare|steer."""
    cfg = config()
    qp = st.query_params
    exp_name = qp.get("experiment")
    trial_id = qp.get("trial")
    page = qp.get("page", "")
    title = (
        f"automl · {exp_name}"
        if exp_name and page != "steer"
        else f"automl · trial {trial_id}"
        if trial_id
        else "automl"
    )
    st.set_page_config(page_title=title, layout="wide")
    st.markdown(_CSS, unsafe_allow_html=True)
    if exp_name or trial_id or page == "compare":
        preload_plotly()
    if cfg.error:
        st.title("automl dashboard")
        st.error(cfg.error)
        return
    q: AnyQueries
    if cfg.server:
        q = _remote(cfg.server, cfg.token)
        where = f"server: {cfg.server}"
    else:
        try:
            store = _store(cfg.store)
        except Exception as exc:
            st.title("automl dashboard")
            st.error(f"Cannot open the store: {exc}")
            return
        q = Queries(store)
        where = f"store: {store.display_url}"
    try:
        _pages(q, cfg, page, exp_name, trial_id, where)
    except RemoteError as exc:  # a refused token or an unreachable server: one line, no trace
        st.error(str(exc))


def _pages(
    q: AnyQueries,
    cfg: argparse.Namespace,
    page: str,
    exp_name: str | None,
    trial_id: str | None,
    where: str,
) -> None:
    with st.sidebar:
        st.markdown("### automl")
        st.markdown(f"[Experiments]({_link()})  \n[Compare]({_link(page='compare')})")
        ok, _ = actions_allowed(cfg)
        if ok:
            st.markdown(f"[Steer]({_link(page='steer')})")
        st.caption(where + (" (read-only)" if cfg.read_only else ""))
    if page == "compare":
        page_compare(q)
    elif page == "steer":
        page_steer(q, cfg)
    elif trial_id:
        page_trial(q, cfg, trial_id)
    elif exp_name:
        page_experiment(q, cfg, exp_name)
        ok, _ = actions_allowed(cfg)
        if ok:
            st.markdown(f"[Steer this experiment]({_link(page='steer', experiment=exp_name)})")
    else:
        page_experiments(q)


if __name__ == "__main__":  # streamlit run and AppTest execute the script as __main__
    main()
