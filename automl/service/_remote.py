"""The HTTP side of ``automl.Client(server=...)``: one httpx client over the REST API."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any
from urllib.parse import quote

from automl.core import ExperimentRecord, ExperimentSpec, Observation, TrialRecord
from automl.errors import AutoMLError, SpecError
from automl.service._wire import (
    error_from_body,
    experiment_from_json,
    observation_from_json,
    trial_from_json,
)

__all__ = ["SPEC_JSON", "RemoteClient"]

API = "/api/v1"
SPEC_JSON = "application/vnd.automl.spec+json"


class RemoteClient:
    """Calls an automl server; every error reply becomes the automl error it names.

    Args:
        url: The server's base URL (``http://127.0.0.1:8080``).
        token: Bearer token, if the server wants one.
        timeout: Seconds per request.
    """

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        try:
            import httpx
        except ModuleNotFoundError as exc:  # pragma: no cover - an extra
            raise AutoMLError(
                "a client of an automl server needs httpx: pip install 'automl[serve]'"
            ) from exc
        if "://" not in url:
            url = f"http://{url}"
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the decoded JSON reply.

        Raises:
            AutoMLError: The server cannot be reached, or answered an error (re-raised as the
                automl error it names: NotFoundError, SpecError, AlreadyExistsError, ...).
        """
        import httpx

        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AutoMLError(f"cannot reach automl server {self.url}: {exc}") from None
        if resp.status_code in (401, 403):
            raise AutoMLError(
                f"automl server {self.url} refused the request ({resp.status_code}): "
                f"{_message(resp)}; pass a token with --token or AUTOML_TOKEN"
            )
        if resp.status_code >= 400:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text
            raise error_from_body(resp.status_code, body)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    @staticmethod
    def _e(name: str) -> str:
        return f"{API}/experiments/{quote(name, safe='')}"

    # -- experiments ---------------------------------------------------------------------------
    def list(self) -> list[ExperimentRecord]:
        """Every experiment, oldest first."""
        return [experiment_from_json(d) for d in self.call("GET", f"{API}/experiments")]

    def get(self, name: str) -> ExperimentRecord:
        """One experiment."""
        return experiment_from_json(self.call("GET", self._e(name)))

    def submit(
        self, spec: ExperimentSpec | str | Path, *, queue: bool = True, priority: int = 0
    ) -> ExperimentRecord:
        """Send a spec (a file's text, or a spec object) to be stored, queued if ``queue``."""
        if isinstance(spec, ExperimentSpec):
            content, ctype = spec.to_json().encode(), SPEC_JSON
        else:
            path = Path(spec)
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise SpecError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
            ctype = "application/yaml"
        params = {"queue": str(queue).lower(), "priority": str(priority)}
        data = self.call(
            "POST",
            f"{API}/experiments",
            content=content,
            headers={"Content-Type": ctype},
            params=params,
        )
        return experiment_from_json(data)

    def stop(self, name: str) -> ExperimentRecord:
        """Stop an experiment."""
        return experiment_from_json(self.call("POST", f"{self._e(name)}:stop"))

    def resume(self, name: str, **budgets: int | None) -> ExperimentRecord:
        """Queue an experiment again, with new budgets."""
        body = {k: v for k, v in budgets.items() if v is not None}
        return experiment_from_json(self.call("POST", f"{self._e(name)}:resume", json=body))

    def delete(self, name: str) -> None:
        """Delete an experiment."""
        self.call("DELETE", self._e(name))

    # -- trials --------------------------------------------------------------------------------
    def trials(self, name: str) -> builtins.list[TrialRecord]:
        """An experiment's trials."""
        return [trial_from_json(d) for d in self.call("GET", f"{self._e(name)}/trials")]

    def trial(self, name: str, trial_id: str) -> TrialRecord:
        """One trial."""
        path = f"{self._e(name)}/trials/{quote(trial_id, safe='')}"
        return trial_from_json(self.call("GET", path))

    def observations(self, name: str) -> builtins.list[Observation]:
        """An experiment's observations."""
        data = self.call("GET", f"{self._e(name)}/observations")
        return [observation_from_json(d) for d in data]

    def best(self, name: str) -> TrialRecord | None:
        """The best trial, or None."""
        data = self.call("GET", f"{self._e(name)}/best")
        return None if data is None else trial_from_json(data)

    def ask(self, name: str) -> TrialRecord:
        """A new asked trial."""
        return trial_from_json(self.call("POST", f"{self._e(name)}/trials:ask"))

    def tell(
        self,
        name: str,
        trial_id: str,
        *,
        step: int | None,
        final: bool,
        metrics: dict[str, float],
    ) -> bool:
        """Report metrics; whether early stopping stopped the trial."""
        path = f"{self._e(name)}/trials/{quote(trial_id, safe='')}:tell"
        body = {"step": step, "final": final, "metrics": metrics}
        return bool(self.call("POST", path, json=body)["should_stop"])

    def fail(self, name: str, trial_id: str, reason: str) -> None:
        """End an asked trial as Failed."""
        path = f"{self._e(name)}/trials/{quote(trial_id, safe='')}:fail"
        self.call("POST", path, json={"reason": reason})


def _message(resp: Any) -> str:
    try:
        body = resp.json()
    except ValueError:
        return str(resp.text)[:200]
    return str(body.get("message") or body.get("detail") or body) if isinstance(body, dict) else ""
