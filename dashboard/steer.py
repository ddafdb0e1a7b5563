"""The steer page's actions on one experiment: budgets, enqueue, invalidate, fork.

Each button is one :class:`automl.Client` call (docs/steering.md); a running experiment's
controller applies the change at its next turn. Bad input is shown as the client's errors, one
line per problem, and changes nothing.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from automl.errors import AutoMLError, SpecError

__all__ = ["steer_experiment"]


def _error(exc: AutoMLError) -> None:
    if isinstance(exc, SpecError):
        for issue in exc.issues:
            st.error(str(issue))
    else:
        st.error(str(exc))


def steer_experiment(client: Any, name: str) -> None:
    """Budget, enqueue, invalidate and fork actions for experiment ``name``.

    Args:
        client: An :class:`automl.Client` on the dashboard's store.
        name: The experiment.
    """
    exp = client.get(name)
    spec = exp.spec
    st.subheader("Budgets (applied at the controller's next turn)")
    b1, b2, b3, b4 = st.columns(4)
    max_trials = b1.number_input(
        "maxTrialCount", min_value=1, value=int(spec.max_trial_count or 1), key="budget"
    )
    parallel = b2.number_input(
        "parallelTrialCount", min_value=1, value=int(spec.parallel_trial_count), key="parallel"
    )
    max_failed = b3.number_input(
        "maxFailedTrialCount (0: none)",
        min_value=0,
        value=int(spec.max_failed_trial_count or 0),
        key="max_failed",
    )
    timeout = b4.text_input(
        "time budget (600, 90s, 1h)",
        value="" if spec.timeout is None else f"{spec.timeout:g}",
        key="timeout",
    )
    if st.button("Apply budgets", key="raise"):
        try:
            from automl.spec._common import parse_duration

            rec = client.set_budget(
                name,
                max_trials=int(max_trials),
                parallel_trials=int(parallel),
                max_failed_trials=int(max_failed) or None,
                timeout=parse_duration(timeout, "timeout") if timeout.strip() else None,
            )
        except AutoMLError as exc:
            _error(exc)
        else:
            s = rec.spec
            st.success(
                f"maxTrialCount is now {s.max_trial_count}, parallelTrialCount "
                f"{s.parallel_trial_count}, maxFailedTrialCount {s.max_failed_trial_count}"
            )

    st.subheader("Enqueue a configuration (runs next)")
    values: dict[str, str] = {}
    cols = st.columns(max(1, min(4, len(spec.parameters))))
    for i, p in enumerate(spec.parameters):
        from automl._steering import describe

        values[p.name] = cols[i % len(cols)].text_input(
            p.name, key=f"enq_{p.name}", placeholder=describe(p)
        )
    if st.button("Enqueue", key="enqueue"):
        try:
            t = client.enqueue(name, {k: v for k, v in values.items() if v.strip()})
        except AutoMLError as exc:
            _error(exc)
        else:
            st.success(f"Enqueued {t.id}: it runs next")

    st.subheader("Invalidate a trial (kept, left out of best and the search)")
    trials = [t for t in client.trials(name) if not t.state.is_active]
    if trials:
        # Stable labels: a selectbox whose options change forgets its choice.
        labels = {f"#{t.number} {t.id} ({t.state.value})": t for t in trials}
        label = st.selectbox("Trial", list(labels), key="inv_trial")
        chosen = labels[label]
        if chosen.invalidated:
            st.caption(f"invalidated: {chosen.attrs['invalidated'].get('reason') or '-'}")
        reason = st.text_input("Reason", key="inv_reason")
        i1, i2, i3 = st.columns(3)
        try:
            if i1.button("Invalidate", key="invalidate"):
                client.invalidate(name, chosen.id, reason)
                st.success(f"Invalidated {chosen.id}")
            if i2.button("Undo invalidate", key="revalidate"):
                client.revalidate(name, chosen.id)
                st.success(f"{chosen.id} counts again")
            if i3.button("Rerun its parameters", key="rerun"):
                t = client.rerun(name, chosen.id)
                st.success(f"Enqueued {t.id} with {chosen.id}'s parameters")
        except AutoMLError as exc:
            _error(exc)
    else:
        st.caption("No finished trial yet.")

    st.subheader("Fork (a new experiment whose search starts from this one's trials)")
    f1, f2 = st.columns(2)
    new_name = f1.text_input("New name", key="fork_name")
    fork_max = f2.number_input("maxTrialCount (0: the same)", min_value=0, value=0, key="fork_max")
    if st.button("Fork", key="fork", disabled=not new_name.strip()):
        try:
            f = client.fork(name, new_name.strip(), max_trials=int(fork_max) or None)
        except AutoMLError as exc:
            _error(exc)
        else:
            st.success(
                f"Forked {f.experiment.name} from {name}: its search starts from {f.kept} of "
                f"{f.total} finished trials; run it with Resume (choose it above)"
            )
