"""The dashboard's read-only queries through ``automl server`` (``automl dashboard --server``).

:class:`RemoteQueries` has the methods of :class:`dashboard.queries.Queries` with the same
signatures and return types; each is one ``GET /api/v1/dashboard/{method}?args=JSON`` with the
bearer token, so a read-only token suffices. Values travel as JSON with tags for what JSON lacks
(tuples, int-keyed dicts, sets, specs, trial records, summaries, pages, curves): :func:`encode`
on one side, :func:`decode` on the other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from automl.core import ExperimentSpec, TrialRecord
from automl.service._wire import trial_from_json, trial_json
from dashboard.queries import Curves, ExperimentSummary, Queries, TrialsPage, add_point

__all__ = ["METHODS", "RemoteError", "RemoteQueries", "call", "decode", "encode"]

# The read-only Queries methods the server answers; nothing else is reachable.
METHODS = frozenset(
    {
        "experiments_summary",
        "experiment",
        "best_trial",
        "trials_page",
        "history",
        "params_values",
        "changed_since",
        "metric_names",
        "curves",
        "step_band",
        "last_points",
        "trial",
        "trial_observations",
        "lineage",
        "trials",
    }
)
PATH = "/api/v1/dashboard"


class RemoteError(Exception):
    """The server refused or could not be reached; the message is one line for the user."""


def encode(v: Any) -> Any:
    """A JSON-able form of a query's argument or result."""
    if isinstance(v, ExperimentSummary):
        d = {f: encode(getattr(v, f)) for f in v.__dataclass_fields__ if f != "spec"}
        return {"__summary__": d, "spec": v.spec.to_json()}
    if isinstance(v, TrialsPage):
        return {"__page__": encode(v.rows), "total": v.total}
    if isinstance(v, Curves):
        return {
            "__curves__": [[k, s, x] for k, (s, x) in v.points.items()],
            "last_id": v.last_id,
            "numbers": None if v.numbers is None else sorted(v.numbers),
        }
    if isinstance(v, TrialRecord):
        return {"__trial__": trial_json(v)}
    if isinstance(v, ExperimentSpec):
        return {"__spec__": v.to_json()}
    if isinstance(v, tuple):
        return {"__tuple__": [encode(x) for x in v]}
    if isinstance(v, set | frozenset):
        return {"__set__": [encode(x) for x in sorted(v)]}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {k: encode(x) for k, x in v.items()}
        return {"__dict__": [[encode(k), encode(x)] for k, x in v.items()]}
    if isinstance(v, list):
        return [encode(x) for x in v]
    return v


def decode(v: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(v, list):
        return [decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "__summary__" in v:
        d = {k: decode(x) for k, x in v["__summary__"].items()}
        return ExperimentSummary(**d, spec=ExperimentSpec.from_json(v["spec"]))
    if "__page__" in v:
        return TrialsPage(decode(v["__page__"]), v["total"])
    if "__curves__" in v:
        nums = v["numbers"]
        return Curves(
            {int(k): (s, x) for k, s, x in v["__curves__"]},
            v["last_id"],
            None if nums is None else set(nums),
        )
    if "__trial__" in v:
        return trial_from_json(v["__trial__"])
    if "__spec__" in v:
        return ExperimentSpec.from_json(v["__spec__"])
    if "__tuple__" in v:
        return tuple(decode(x) for x in v["__tuple__"])
    if "__set__" in v:
        return {decode(x) for x in v["__set__"]}
    if "__dict__" in v:
        return {decode(k): decode(x) for k, x in v["__dict__"]}
    return {k: decode(x) for k, x in v.items()}


def call(q: Queries, method: str, args: str) -> str:
    """Run one whitelisted query on the server's side: JSON ``[args, kwargs]`` in, JSON out."""
    if method not in METHODS:
        raise KeyError(method)
    a, kw = decode(json.loads(args or "[[], {}]"))
    return json.dumps(encode(getattr(q, method)(*a, **kw)))


def _message(r: httpx.Response) -> str:
    try:
        msg = str(r.json().get("message", r.text))
    except (ValueError, AttributeError):
        msg = r.text
    if r.status_code in (401, 403):
        hint = "pass --token or set AUTOML_TOKEN" + (
            " (a read-write one to act)" if r.status_code == 403 else ""
        )
        return f"The server refused the token ({r.status_code}): {msg}; {hint}."
    return f"The server answered {r.status_code}: {msg}"


class RemoteQueries:
    """The dashboard's queries through ``automl server`` at ``server`` with ``token``."""

    def __init__(self, server: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        payload = json.dumps(encode([list(args), kwargs]))
        try:
            r = self._http.get(f"{PATH}/{method}", params={"args": payload})
        except httpx.HTTPError as exc:
            raise RemoteError(f"Cannot reach the server {self.server}: {exc}") from None
        if r.status_code != 200:
            raise RemoteError(_message(r))
        return decode(json.loads(r.text))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def experiments_summary(self) -> list[ExperimentSummary]:
        """See :meth:`Queries.experiments_summary`."""
        out: list[ExperimentSummary] = self._call("experiments_summary")
        return out

    def experiment(self, name: str) -> ExperimentSummary | None:
        """See :meth:`Queries.experiment`."""
        out: ExperimentSummary | None = self._call("experiment", name)
        return out

    def best_trial(self, exp_id: str, direction: str) -> dict[str, Any] | None:
        """See :meth:`Queries.best_trial`."""
        out: dict[str, Any] | None = self._call("best_trial", exp_id, direction)
        return out

    def trials_page(
        self,
        exp_id: str,
        states: Sequence[str] | None = None,
        sort: str = "number",
        desc: bool = False,
        offset: int = 0,
        limit: int = 100,
        search: str | None = None,
    ) -> TrialsPage:
        """See :meth:`Queries.trials_page`."""
        states = None if states is None else list(states)
        out: TrialsPage = self._call(
            "trials_page", exp_id, states, sort, desc, offset, limit, search
        )
        return out

    def history(self, exp_id: str) -> list[tuple[int, float | None, str, float | None]]:
        """See :meth:`Queries.history`."""
        out: list[tuple[int, float | None, str, float | None]] = self._call("history", exp_id)
        return out

    def params_values(
        self, exp_id: str, states: Iterable[str] = ("Succeeded",), limit: int | None = None
    ) -> list[tuple[int, dict[str, Any], float | None, str]]:
        """See :meth:`Queries.params_values`."""
        out: list[tuple[int, dict[str, Any], float | None, str]] = self._call(
            "params_values", exp_id, list(states), limit
        )
        return out

    def changed_since(self, exp_id: str, since: float) -> list[dict[str, Any]]:
        """See :meth:`Queries.changed_since`."""
        out: list[dict[str, Any]] = self._call("changed_since", exp_id, since)
        return out

    def metric_names(self, exp_id: str) -> list[str]:
        """See :meth:`Queries.metric_names`."""
        out: list[str] = self._call("metric_names", exp_id)
        return out

    def curves(
        self,
        exp_id: str,
        metric: str,
        since_id: int = 0,
        previous: Curves | None = None,
        numbers: Iterable[int] | None = None,
        until_id: int | None = None,
    ) -> Curves:
        """See :meth:`Queries.curves`; ``previous`` is extended here, not sent.

        The server leaves a missing step NaN; it is numbered here after the points already
        held, as :meth:`Queries.curves` numbers it after ``previous``'s.
        """
        nums = None if numbers is None else sorted(set(numbers))
        new: Curves = self._call(
            "curves", exp_id, metric, since_id, None, nums, until_id, number_implicit=False
        )
        cur = previous if previous is not None else Curves()
        for number, (steps, values) in new.points.items():
            for step, value in zip(steps, values, strict=True):
                add_point(cur, number, None if math.isnan(step) else step, value)
        cur.last_id = max(cur.last_id, new.last_id)
        return cur

    def step_band(self, exp_id: str, metric: str) -> list[tuple[float, float, float, float, int]]:
        """See :meth:`Queries.step_band`."""
        out: list[tuple[float, float, float, float, int]] = self._call("step_band", exp_id, metric)
        return out

    def last_points(
        self, exp_id: str, metric: str, states: Sequence[str] = ("EarlyStopped",)
    ) -> dict[int, tuple[float, float]]:
        """See :meth:`Queries.last_points`."""
        out: dict[int, tuple[float, float]] = self._call(
            "last_points", exp_id, metric, list(states)
        )
        return out

    def curves_for(
        self, exp_id: str, metric: str, numbers: set[int] | None, previous: Curves | None
    ) -> Curves:
        """See :meth:`Queries.curves_for` (the same logic, on :meth:`curves` above)."""
        return Queries.curves_for(self, exp_id, metric, numbers, previous)  # type: ignore[arg-type]

    def trial(self, trial_id: str) -> dict[str, Any] | None:
        """See :meth:`Queries.trial`."""
        out: dict[str, Any] | None = self._call("trial", trial_id)
        return out

    def trial_observations(self, trial_id: str, since_id: int = 0) -> list[dict[str, Any]]:
        """See :meth:`Queries.trial_observations`."""
        out: list[dict[str, Any]] = self._call("trial_observations", trial_id, since_id)
        return out

    def lineage(self, exp_id: str) -> list[dict[str, Any]]:
        """See :meth:`Queries.lineage`."""
        out: list[dict[str, Any]] = self._call("lineage", exp_id)
        return out

    def trials(self, exp_id: str) -> list[TrialRecord]:
        """See :meth:`Queries.trials`."""
        out: list[TrialRecord] = self._call("trials", exp_id)
        return out
