"""From an experiment name to a running server: find the model, build the endpoint, run uvicorn.

``automl serve NAME`` serves the best trial's saved model (``--trial N`` another one); a
``--canary OTHER:PCT`` adds a second model (another experiment's best, or ``EXP/N`` its trial
N) that answers PCT% of the requests. The server binds loopback unless told otherwise.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.core import TrialRecord, TrialState
from automl.errors import AutoMLError, NotFoundError, SpecError
from integrations.serving._app import MAX_BATCH, MAX_BODY_BYTES, Backend, Endpoint, create_app
from integrations.serving._explain import make_explainer
from integrations.serving._model import Predictor, load_predictor
from integrations.serving._transform import load_transformer

__all__ = [
    "BackgroundServer",
    "ModelSource",
    "build_endpoint",
    "parse_canary",
    "resolve_model",
    "serve",
]


@dataclass(frozen=True)
class ModelSource:
    """Where a served model comes from.

    Attributes:
        experiment: Experiment name.
        trial_id: The trial's id (the served ``model_version``).
        trial_number: The trial's number in the experiment.
        artifact_dir: Its artifact directory.
        model: The model's name within it.
        meta: The model's record (``<model>.json``).
    """

    experiment: str
    trial_id: str
    trial_number: int
    artifact_dir: Path
    model: str
    meta: dict[str, Any]


def _pick_trial(client: Any, name: str, trial: int | str | None) -> TrialRecord:
    if trial is None:
        best = client.best_trial(name)
        if best is None:
            raise NotFoundError(
                f"experiment {name!r} has no succeeded trial, so there is no best model to serve"
            )
        return best  # type: ignore[no-any-return]
    trials: list[TrialRecord] = client.trials(name)
    for t in trials:
        if str(t.number) == str(trial) or t.id == str(trial):
            return t
    raise NotFoundError(
        f"experiment {name!r} has no trial {trial!r} (trials 0-{len(trials) - 1})"
        if trials
        else f"experiment {name!r} has no trials"
    )


def _artifact_dir(client: Any, name: str, t: TrialRecord) -> Path | None:
    try:
        return Path(client.artifacts(name, trial=t.number))
    except NotFoundError:  # not on this machine: the path recorded in the store, if any
        outputs = getattr(t, "outputs", None)
        recorded = outputs.get("artifact_dir") if isinstance(outputs, Mapping) else None
        return Path(str(recorded)) if recorded else None


def resolve_model(
    client: Any, ref: str, trial: int | str | None = None, model: str = "model"
) -> ModelSource:
    """The saved model of an experiment's best trial (or of trial ``trial``).

    Args:
        client: An :class:`automl.Client` on the store.
        ref: ``EXPERIMENT`` or ``EXPERIMENT/TRIAL`` (a trial number or id).
        trial: A trial number or id (overrides one in ``ref``).
        model: The model's name (``automl.save_model(obj, name=...)``).

    Raises:
        NotFoundError: Unknown experiment or trial, or a trial that saved no such model.
    """
    name, _, in_ref = ref.partition("/")
    if trial is None and in_ref:
        trial = in_ref
    client.get(name)  # NotFoundError for an unknown experiment
    t = _pick_trial(client, name, trial)
    which = "best trial" if trial is None else "trial"
    where = _artifact_dir(client, name, t)
    meta: Any = None
    meta_path = where / f"{model}.json" if where is not None else None
    if meta_path is not None and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AutoMLError(f"cannot read model record {meta_path}: {exc}") from None
    else:  # the store's copy of the record (the directory may live on another machine)
        outputs = getattr(t, "outputs", None)
        models = outputs.get("models") if isinstance(outputs, Mapping) else None
        meta = models.get(model) if isinstance(models, Mapping) else None
    if where is None or not isinstance(meta, Mapping):
        state = "" if t.state == TrialState.SUCCEEDED else f" ({t.state.value})"
        raise NotFoundError(
            f"{which} #{t.number} ({t.id}{state}) of experiment {name!r} saved no model "
            f"{model!r}"
            + (f" in {where}" if where is not None else "")
            + "; the trial must call automl.save_model(obj) (or pass --trial, --model)"
        )
    return ModelSource(name, t.id, t.number, where, model, dict(meta))


def parse_canary(value: str) -> tuple[str, float]:
    """``NAME[/TRIAL]:PERCENT`` as (ref, percent).

    Raises:
        SpecError: Not that form, or a percent outside (0, 100] (path ``--canary``).
    """
    ref, sep, pct = value.rpartition(":")
    if not sep or not ref:
        raise SpecError(f"must be NAME:PERCENT or NAME/TRIAL:PERCENT; got {value!r}", "--canary")
    try:
        percent = float(pct)
    except ValueError:
        raise SpecError(f"PERCENT must be a number; got {pct!r}", "--canary") from None
    if not math.isfinite(percent) or not 0 < percent <= 100:
        raise SpecError(f"PERCENT must be in (0, 100]; got {pct}", "--canary")
    return ref, percent


def _load(src: ModelSource, served_name: str, predict_proba: bool) -> Predictor:
    return load_predictor(
        src.artifact_dir,
        src.model,
        name=served_name,
        version=src.trial_id,
        predict_proba=predict_proba,
        experiment=src.experiment,
        trial_number=src.trial_number,
    )


def build_endpoint(
    client: Any,
    name: str,
    *,
    trial: int | str | None = None,
    model: str = "model",
    model_name: str | None = None,
    canary: str | None = None,
    transformer: str | Any = None,
    explainer: str = "auto",
    predict_proba: bool = False,
    background: str | Path | None = None,
    seed: int | None = None,
) -> tuple[Endpoint, list[ModelSource]]:
    """Load the models and hooks an ``automl serve`` invocation names.

    Args:
        client: An :class:`automl.Client`.
        name: Experiment (``EXP`` or ``EXP/TRIAL``).
        trial: Trial number or id (default: the best trial).
        model: Saved model name.
        model_name: Name to serve under (default: the experiment name).
        canary: ``OTHER[/TRIAL]:PERCENT``.
        transformer: ``module:Class``, ``file.py:Class`` or an object with hooks.
        explainer: ``auto`` (attributions for scikit-learn models) or ``none``.
        predict_proba: Classifiers answer with class probabilities.
        background: Baseline rows for the explainer (``.npy``/``.csv``).
        seed: Seed of the canary split.

    Returns:
        The endpoint and the sources of its models (default first).

    Raises:
        NotFoundError: Unknown experiment/trial or no saved model.
        SpecError: Bad ``--canary``, ``--transformer`` or ``--explainer``.
        AutoMLError: A model that cannot be loaded.
    """
    if explainer not in ("auto", "none"):
        raise SpecError(f"must be auto or none; got {explainer!r}", "--explainer")
    hooks = load_transformer(transformer) if transformer is not None else None
    src = resolve_model(client, name, trial, model)
    served = model_name or src.experiment
    sources = [src]

    def backend(s: ModelSource, variant: str) -> Backend:
        p = _load(s, served, predict_proba)
        exp = make_explainer(p, background, seed=seed or 0) if explainer == "auto" else None
        return Backend(p, exp, variant)

    main = backend(src, "default")
    other: Backend | None = None
    percent = 0.0
    if canary is not None:
        ref, percent = parse_canary(canary)
        csrc = resolve_model(client, ref, None, model)
        sources.append(csrc)
        other = backend(csrc, "canary")
        a, b = main.predictor.instance_shape(), other.predictor.instance_shape()
        if a is not None and b is not None and a != b:
            raise SpecError(
                f"the canary model takes instances of shape {list(b)}, the default "
                f"{list(a)}: both must accept the same requests",
                "--canary",
            )
    return Endpoint(served, main, other, percent, hooks, seed), sources


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without, small replies wait ~40 ms for delayed ACKs.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AutoMLError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn(app: Any, log_level: str) -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the serve extra
        raise ImportError("automl serve needs uvicorn: pip install 'automl[serve]'") from exc
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(
    endpoint: Endpoint,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_batch: int = MAX_BATCH,
    max_body_bytes: int = MAX_BODY_BYTES,
    echo: Callable[[str], None] = print,
    log_level: str = "warning",
) -> None:
    """Serve ``endpoint`` until Ctrl-C (blocking); prints the URL and routes first.

    Args:
        endpoint: What to serve.
        host: Address to bind (loopback by default).
        port: Port; 0 picks a free one (printed).
        max_batch: Most instances per request.
        max_body_bytes: Largest request body.
        echo: Where the URL and routes are printed.
        log_level: uvicorn's log level.
    """
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    server = _uvicorn(
        create_app(endpoint, max_batch=max_batch, max_body_bytes=max_body_bytes), log_level
    )
    n = endpoint.name
    echo(f"serving model {n!r} at {url}")
    echo(f"  v1: POST {url}/v1/models/{n}:predict   POST {url}/v1/models/{n}:explain")
    echo(f"  v2: POST {url}/v2/models/{n}/infer   GET {url}/v2/models/{n}")
    echo(f"      GET {url}/v2/health/ready   GET {url}/v2/models/{n}/ready")
    echo("Ctrl-C stops.")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """A real uvicorn server on a free port in a thread (tests, notebooks, examples).

    Example:
        >>> with BackgroundServer(create_app(endpoint)) as srv:  # doctest: +SKIP
        ...     httpx.get(srv.url + "/v2/health/ready")

    Args:
        app: The ASGI app.
        host: Address to bind.
        port: Port (0: a free one).
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = _bind(host, port)
        self.url = _url(host, self._sock.getsockname()[1])
        self._server = _uvicorn(app, "warning")
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        """Start serving; returns once the server accepts requests."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise AutoMLError(f"the server at {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
