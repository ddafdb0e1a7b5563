"""automl serve: real uvicorn servers on loopback, KServe v1/v2 requests, KServe manifests.

Models come from real tuned experiments (``automl.tune`` with ``automl.save_model``); servers
are real uvicorn servers on free 127.0.0.1 ports (threads, and ``automl serve`` subprocesses).
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

import automl
from automl.cli import app
from automl.errors import AutoMLError, NotFoundError, SpecError
from integrations.serving import (
    Backend,
    BackgroundServer,
    Endpoint,
    build_endpoint,
    create_app,
    inference_service,
    inference_service_for,
    load_predictor,
    load_transformer,
    make_explainer,
    parse_canary,
    validate_inference_service,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
X, Y = load_iris(return_X_y=True)


# -- objectives of the tuned experiments (module level: the spec records their import path) --
def iris_logreg(C: float) -> float:
    model = LogisticRegression(C=C, max_iter=500).fit(X, Y)
    automl.save_model(model)
    return float(model.score(X, Y))


def iris_forest(max_depth: int) -> float:
    model = RandomForestClassifier(n_estimators=8, max_depth=max_depth, random_state=0)
    model.fit(X, Y)
    automl.save_model(model)
    return float(model.score(X, Y))


def saves_nothing(x: float) -> float:
    return x


class Lab:
    """The tuned experiments shared by this module's tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = f"sqlite:///{root / 'automl.db'}"
        self.runs = root / "automl-runs"

    def client(self) -> automl.Client:
        return automl.Client(self.store, runs_dir=self.runs)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("serving")
    lab = Lab(root)
    cwd = os.getcwd()
    os.chdir(root)  # tune() keeps trial artifacts under ./automl-runs
    try:
        common: dict[str, Any] = {"direction": "maximize", "store": lab.store, "seed": 0}
        automl.tune(
            iris_logreg, {"C": automl.double(0.01, 10, log=True)}, max_trials=3, name="iris-lr",
            **common,
        )  # fmt: skip
        automl.tune(
            iris_forest, {"max_depth": automl.int(1, 4)}, max_trials=2, name="iris-rf", **common
        )
        automl.tune(
            saves_nothing, {"x": automl.double(0, 1)}, max_trials=1, name="no-model", **common
        )
    finally:
        os.chdir(cwd)
    yield lab


@pytest.fixture(scope="module")
def server(lab: Lab) -> Iterator[tuple[str, Endpoint]]:
    """iris-lr's best model with its explainer; small limits to test them."""
    with lab.client() as client:
        endpoint, _ = build_endpoint(client, "iris-lr", model_name="iris", background=None)
    app = create_app(endpoint, max_batch=50, max_body_bytes=20_000)
    with BackgroundServer(app) as srv:
        yield srv.url, endpoint


def _one(value: float, datatype: str) -> dict[str, Any]:
    """One iris instance whose third feature is ``value``."""
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": datatype,
                        "data": [1, 2, value, 3]}]}  # fmt: skip


def _nested(depth: int) -> dict[str, Any]:
    data: Any = [1.0]
    for _ in range(depth):
        data = [data]
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": data}]}


def v2_body(rows: np.ndarray, datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": datatype,
                "data": rows.reshape(-1).tolist(),
            }
        ],
        **extra,
    }


# -- v1 and v2 on a real server ---------------------------------------------------------------
def test_v1_predict_answers_with_the_best_trials_model(lab: Lab, server: tuple[str, Any]) -> None:
    url, _ = server
    with lab.client() as client:
        best = client.best_trial("iris-lr")
        assert best is not None
        model = client.load_model("iris-lr")
    rows = X[[0, 60, 120]]
    r = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": rows.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == model.predict(rows).tolist()
    assert body["model_name"] == "iris" and body["model_version"] == best.id
    assert r.headers["x-automl-model"] == best.id
    assert httpx.get(f"{url}/v1/models/iris").json() == {"name": "iris", "ready": True}
    assert httpx.get(f"{url}/v1/models").json() == {"models": ["iris"]}


def test_v2_infer_metadata_and_readiness(lab: Lab, server: tuple[str, Any]) -> None:
    url, endpoint = server
    version = endpoint.default.version
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    server_meta = httpx.get(f"{url}/v2").json()
    assert server_meta["name"] == "automl" and "version" in server_meta
    meta = httpx.get(f"{url}/v2/models/iris").json()
    assert meta["name"] == "iris" and meta["versions"] == [version]
    assert meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert meta["outputs"][0]["name"] == "output-0"

    rows = X[[5, 55, 105, 140]]
    r = httpx.post(f"{url}/v2/models/iris/infer", json=v2_body(rows, "FP32", id="req-7"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "iris" and body["model_version"] == version
    assert body["id"] == "req-7"
    [out] = body["outputs"]
    model = endpoint.default.predictor.model
    expected = model.predict(rows.astype(np.float32))
    assert out["name"] == "output-0" and out["shape"] == [4] and out["datatype"] == "INT64"
    assert out["data"] == expected.tolist()
    # The same request addressed to the version explicitly; nested data is accepted too.
    nested = v2_body(rows)
    nested["inputs"][0]["data"] = rows.tolist()
    r2 = httpx.post(f"{url}/v2/models/iris/versions/{version}/infer", json=nested)
    assert r2.status_code == 200 and r2.json()["outputs"][0]["data"] == expected.tolist()
    assert r2.json()["id"]  # generated when the request has none


def test_v1_explain_attributions_add_up_and_match_the_linear_model(
    server: tuple[str, Any],
) -> None:
    url, endpoint = server
    explainer = endpoint.default.explainer
    assert explainer is not None and explainer.method == "linear"
    model = endpoint.default.predictor.model
    rows = X[[10, 70, 130]]
    r = httpx.post(f"{url}/v1/models/iris:explain", json={"instances": rows.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "linear" and body["baseline"] == "zeros"
    for row, e in zip(rows, body["explanations"], strict=True):
        k = int(model.predict(row[None])[0])
        assert e["target"] == k and e["output"] == f"decision_function[{k}]"
        # Exact: coef_k * (x - 0), and the decision function's change from the baseline.
        np.testing.assert_allclose(e["attributions"], model.coef_[k] * row, rtol=1e-9)
        assert sum(e["attributions"]) == pytest.approx(e["value"] - e["baseline_value"])
        assert e["value"] == pytest.approx(model.decision_function(row[None])[0, k])


# -- bad requests: 4xx JSON naming the problem, and the server keeps serving ----------------
@pytest.mark.parametrize(
    ("path", "kwargs", "status", "needle"),
    [
        ("/v1/models/iris:predict", {"json": {"instances": [[1, 2, 3]]}}, 400, "expects [4]"),
        ("/v1/models/iris:predict", {"json": {"instances": [[1, 2, "x", 4]]}}, 400, "[0][2]"),
        ("/v1/models/iris:predict", {"json": {"instances": [[1, 2], [1, 2, 3]]}}, 400, "ragged"),
        ("/v1/models/iris:predict", {"json": {"rows": [[1, 2, 3, 4]]}}, 400, '"instances"'),
        ("/v1/models/iris:predict", {"json": {"instances": [[1.0] * 4] * 51}}, 413, "max-batch"),
        ("/v1/models/iris:predict", {"content": b'{"instances": [[1'}, 400, "not valid JSON"),
        ("/v1/models/iris:predict", {"content": b" " * 30_000}, 413, "max-body-bytes"),
        # chunked, without a content-length: counted as it arrives
        ("/v1/models/iris:predict", {"content": iter([b" " * 8_000] * 4)}, 413, "max-body"),
        ("/v1/models/tulip:predict", {"json": {"instances": [[1] * 4]}}, 404, "tulip"),
        ("/v2/models/tulip/infer", {"json": v2_body(X[:1])}, 404, "tulip"),
        ("/v2/models/iris/versions/nope/infer", {"json": v2_body(X[:1])}, 404, "nope"),
        ("/v2/models/iris/infer", {"json": v2_body(X[:2, :3])}, 400, "expects [4]"),
        ("/v2/models/iris/infer", {"json": v2_body(X[:1], "FP99")}, 400, "datatype"),
        ("/v2/models/iris/infer", {"json": v2_body(X[:1], "BYTES")}, 400, "BYTES"),
        ("/v2/models/iris/infer", {"json": v2_body(X[:1], "INT64")}, 400, "integer"),
        (
            "/v2/models/iris/infer",
            {
                "json": {
                    "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1]}]
                }
            },
            400,
            "needs 8",
        ),
        ("/v2/models/iris/infer", {"json": {"inputs": []}}, 400, "inputs"),
        # hostile: nested brackets past Python's recursion limit (100k: see below)
        ("/v1/models/iris:predict", {"content": b"[" * 19_000}, 400, "levels deep"),
        ("/v2/models/iris/infer", {"content": b"[" * 9_000 + b"]" * 9_000}, 400, "levels deep"),
        ("/v2/models/iris/infer", {"json": _nested(40)}, 400, "more than 32 levels"),
        # values their datatype cannot hold: refused, never cast to inf or wrapped
        ("/v2/models/iris/infer", {"json": _one(1e10, "FP16")}, 400, "range of FP16 (±65504)"),
        ("/v2/models/iris/infer", {"json": _one(1e308, "FP32")}, 400, "data[2] is 1e+308"),
        ("/v2/models/iris/infer", {"json": _one(1000, "INT8")}, 400, "range of INT8 (-128..127)"),
        ("/v2/models/iris/infer", {"json": _one(-5, "UINT8")}, 400, "range of UINT8 (0..255)"),
        ("/v2/models/iris/infer", {"json": _one(2**64, "UINT64")}, 400, "range of UINT64"),
        (
            "/v2/models/iris/infer",
            {
                "content": b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", '
                b'"data": [1, 2, 1e999, 3]}]}'
            },
            400,
            "data[2] must be a finite number",
        ),
        (
            "/v2/models/iris/infer",
            {"json": {**v2_body(X[:1]), "outputs": [{"name": "p"}]}},
            400,
            "one output, output-0",
        ),
    ],
)
def test_malformed_requests_get_a_json_4xx_and_the_server_keeps_serving(
    server: tuple[str, Any], path: str, kwargs: dict[str, Any], status: int, needle: str
) -> None:
    url, _ = server
    r = httpx.post(url + path, **kwargs)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]
    ok = httpx.post(f"{url}/v1/models/iris:predict", json={"instances": X[:1].tolist()})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1


def binary_request(
    rows: np.ndarray, datatype: str, *, binary_output: bool = False, size: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A v2 request in the binary tensor extension, laid out as KServe's client sends it
    (``InferRequest.to_rest`` after ``set_data_from_numpy(..., binary_data=True)``)."""
    raw = rows.astype(np.dtype(datatype.replace("FP", "float").lower()).newbyteorder("<"))
    blob = raw.tobytes()
    head: dict[str, Any] = {
        "id": "bin-1",
        "model_name": "iris",
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(blob) if size is None else size},
            }
        ],
    }
    if binary_output:
        head["outputs"] = [{"name": "output-0", "parameters": {"binary_data": True}}]
    text = json.dumps(head).encode()
    headers = {
        "inference-header-content-length": str(len(text)),
        "content-type": "application/octet-stream",
    }
    return text + blob, headers


def test_v2_binary_tensor_extension_in_and_out(server: tuple[str, Endpoint]) -> None:
    url, endpoint = server
    rows = X[[3, 66, 133]]
    expected = endpoint.default.predictor.model.predict(rows.astype(np.float32)).tolist()
    body, headers = binary_request(rows, "FP32")
    r = httpx.post(f"{url}/v2/models/iris/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "bin-1" and r.json()["outputs"][0]["data"] == expected
    # binary outputs: JSON header of the announced length, then int64 little-endian labels
    body, headers = binary_request(rows, "FP64", binary_output=True)
    r = httpx.post(f"{url}/v2/models/iris/infer", content=body, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    cut = int(r.headers["inference-header-content-length"])
    head = json.loads(r.content[:cut])
    [out] = head["outputs"]
    assert out["datatype"] == "INT64" and out["shape"] == [3] and "data" not in out
    assert out["parameters"]["binary_data_size"] == 3 * 8 == len(r.content) - cut
    assert np.frombuffer(r.content[cut:], dtype="<i8").tolist() == expected
    assert head["model_name"] == "iris" and head["model_version"] == endpoint.default.version
    # the same request with parameters.binary_data_output instead of per-output flags
    head_only, headers = binary_request(rows, "FP64")
    doc = json.loads(head_only[: int(headers["inference-header-content-length"])])
    doc["parameters"] = {"binary_data_output": True}
    text = json.dumps(doc).encode()
    blob = rows.astype("<f8").tobytes()
    headers["inference-header-content-length"] = str(len(text))
    r = httpx.post(f"{url}/v2/models/iris/infer", content=text + blob, headers=headers)
    cut = int(r.headers["inference-header-content-length"])
    assert np.frombuffer(r.content[cut:], dtype="<i8").tolist() == expected
    # wrong sizes and headers are named, and the server keeps serving
    for content, hdrs, needle in [
        (*binary_request(rows, "FP32", size=7), "binary_data_size is 7 bytes"),
        ((text + blob)[:-4], headers, "needs bytes 0-96 of the binary part, which holds 92"),
        (text + blob + b"xx", headers, "the binary part holds 98 bytes; the inputs' binary"),
        (body, {"inference-header-content-length": "x"}, "byte length of the JSON part"),
        (*binary_request(np.array([[1, 2, 3, 4]]), "BYTES"), "BYTES is not supported"),
    ]:
        bad = httpx.post(f"{url}/v2/models/iris/infer", content=content, headers=hdrs)
        assert bad.status_code == 400 and needle in bad.json()["error"], bad.text
    nan = binary_request(np.array([[1.0, np.nan, 2.0, 3.0]]), "FP64")
    bad = httpx.post(f"{url}/v2/models/iris/infer", content=nan[0], headers=nan[1])
    assert bad.status_code == 400 and "data[1] must be a finite number" in bad.json()["error"]
    assert httpx.get(f"{url}/v2").json()["extensions"] == ["binary_tensor_data"]
    assert httpx.get(f"{url}/v2/models").json() == {"models": ["iris"]}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the scaler's, meant
def test_inputs_the_model_refuses_or_cannot_hold_are_4xx(tmp_path: Path) -> None:
    # A scaler in front of the model: 1e308 is a finite double, but scaled it overflows to
    # infinity and scikit-learn refuses it with a ValueError: the client's input, so 400.
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)
    automl.save_model(pipe, directory=tmp_path / "pipe")
    torch.manual_seed(0)
    automl.save_model(torch.nn.Linear(4, 3), directory=tmp_path / "net")
    big = [[5.0, 1e308, 1.4, 0.2]]  # sepal width: std 0.43, so scaled past float64's max
    for model, needle in [
        ("pipe", "model 'm' refused the input: ValueError: Input X contains infinity"),
        ("net", "instances[0][1] is 1e+308, outside the range of FP32 (±3.40282e+38)"),
    ]:
        predictor = load_predictor(tmp_path / model, name="m", version="v")
        with BackgroundServer(create_app(Endpoint("m", Backend(predictor)))) as srv:
            r = httpx.post(f"{srv.url}/v1/models/m:predict", json={"instances": big})
            assert r.status_code == 400 and needle in r.json()["error"], r.text
            ok = httpx.post(f"{srv.url}/v1/models/m:predict", json={"instances": X[:1].tolist()})
            assert ok.status_code == 200
            for path in ("/v1/models/m:predict", "/v2/models/m/infer"):  # default body limit
                deep = httpx.post(srv.url + path, content=b"[" * 100_000 + b"]" * 100_000)
                assert deep.status_code == 400 and "levels deep" in deep.json()["error"]


class _Unserializable:
    def postprocess(self, result: Any) -> Any:
        return {"predictions": object()}  # a hook bug: the reply cannot be written


def test_an_unexpected_server_error_still_answers_with_the_json_error_body(lab: Lab) -> None:
    with lab.client() as client:
        endpoint, _ = build_endpoint(client, "iris-lr", transformer=_Unserializable())
    with BackgroundServer(create_app(endpoint)) as srv:
        r = httpx.post(f"{srv.url}/v1/models/iris-lr:predict", json={"instances": X[:1].tolist()})
        assert r.status_code == 500
        assert r.json()["error"].startswith("internal error: TypeError")


# -- canary: a seeded split near its declared share ---------------------------------------------
def test_canary_split_is_near_its_percentage_and_says_who_answered(lab: Lab) -> None:
    with lab.client() as client:
        endpoint, sources = build_endpoint(
            client, "iris-lr", model_name="iris", canary="iris-rf:30", seed=5
        )
        lr_best, rf_best = client.best_trial("iris-lr"), client.best_trial("iris-rf")
    assert lr_best is not None and rf_best is not None
    assert [s.trial_id for s in sources] == [lr_best.id, rf_best.id]
    models = {b.version: b.predictor.model for b in endpoint.backends}
    row = X[[70]]
    seen: dict[str, int] = {}
    with BackgroundServer(create_app(endpoint)) as srv, httpx.Client(base_url=srv.url) as http:
        for i in range(400):
            if i % 2:
                r = http.post("/v1/models/iris:predict", json={"instances": row.tolist()})
                answered, prediction = r.json()["model_version"], r.json()["predictions"]
            else:
                r = http.post("/v2/models/iris/infer", json=v2_body(row))
                answered, prediction = r.json()["model_version"], r.json()["outputs"][0]["data"]
            assert r.status_code == 200
            assert r.headers["x-automl-model"] == answered
            assert r.headers["x-automl-variant"] == (
                "canary" if answered == rf_best.id else "default"
            )
            assert prediction == models[answered].predict(row).tolist()
            seen[answered] = seen.get(answered, 0) + 1
    assert set(seen) == {lr_best.id, rf_best.id}
    share = seen[rf_best.id] / 400
    assert 0.24 <= share <= 0.36, seen  # 30% declared; binomial sd at n=400 is 2.3%


def test_shapley_attributions_of_a_forest_add_up_and_ignore_unchanged_features(lab: Lab) -> None:
    with lab.client() as client:
        src = client.artifacts("iris-rf")
    predictor = load_predictor(src, name="rf", version="v")
    base = X.mean(axis=0)
    explainer = make_explainer(predictor, X)  # background rows: their mean is the baseline
    assert explainer is not None and explainer.method == "shapley-permutation"
    x = base.copy()
    x[2:] = X[120, 2:]  # petal length and width of a virginica, the rest at the baseline
    [e] = explainer.explain(x[None])
    assert sum(e["attributions"]) == pytest.approx(e["value"] - e["baseline_value"], abs=1e-12)
    assert e["attributions"][0] == 0.0 and e["attributions"][1] == 0.0
    proba = predictor.model.predict_proba(np.stack([x, base]))
    k = int(np.argmax(proba[0]))
    assert e["output"] == f"predict_proba[{k}]"
    assert e["value"] == pytest.approx(proba[0, k])
    assert e["baseline_value"] == pytest.approx(proba[1, k])
    assert explainer.explain(x[None]) == [e]  # seeded: the same explanation every time


# -- transformer hooks ---------------------------------------------------------------------------
TRANSFORMER = '''
NAMES = ["setosa", "versicolor", "virginica"]


class Flowers:
    """Takes {"flowers": [{"sepal_length": ...}, ...]}; answers with species names too."""

    FIELDS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

    def preprocess(self, payload):
        if "flowers" not in payload:
            return payload
        return {"instances": [[f[k] for k in self.FIELDS] for f in payload["flowers"]]}

    def postprocess(self, result):
        if "predictions" in result:
            result["species"] = [NAMES[p] for p in result["predictions"]]
        return result
'''


def test_transformer_hooks_run_around_the_predictor(lab: Lab, tmp_path: Path) -> None:
    hooks = tmp_path / "flowers.py"
    hooks.write_text(TRANSFORMER)
    with lab.client() as client:
        endpoint, _ = build_endpoint(
            client, "iris-lr", model_name="iris", transformer=f"{hooks}:Flowers"
        )
    fields = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    rows = X[[0, 75, 149]]
    flowers = [dict(zip(fields, r.tolist(), strict=True)) for r in rows]
    expected = endpoint.default.predictor.model.predict(rows).tolist()
    with BackgroundServer(create_app(endpoint)) as srv:
        r = httpx.post(f"{srv.url}/v1/models/iris:predict", json={"flowers": flowers})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == expected
        assert r.json()["species"] == [["setosa", "versicolor", "virginica"][p] for p in expected]
        # preprocess runs before :explain too
        ex = httpx.post(f"{srv.url}/v1/models/iris:explain", json={"flowers": flowers[:1]})
        assert ex.status_code == 200 and len(ex.json()["explanations"]) == 1
        # a payload the hook cannot read is the client's fault: 400 naming the hook
        bad = httpx.post(f"{srv.url}/v1/models/iris:predict", json={"flowers": [{"x": 1}]})
        assert bad.status_code == 400 and "transformer preprocess" in bad.json()["error"]
        v2 = httpx.post(f"{srv.url}/v2/models/iris/infer", json=v2_body(rows))
        assert v2.status_code == 200 and v2.json()["outputs"][0]["data"] == expected


def test_bad_transformer_and_canary_options_are_named() -> None:
    with pytest.raises(SpecError, match="--transformer") as exc:
        load_transformer("json:nothing_here")
    assert "no attribute" in str(exc.value)
    with pytest.raises(SpecError, match="neither preprocess"):
        load_transformer("json:JSONDecoder")
    with pytest.raises(SpecError, match=r"--canary: PERCENT must be in \(0, 100\]"):
        parse_canary("other:150")
    with pytest.raises(SpecError, match="NAME:PERCENT"):
        parse_canary("other")
    assert parse_canary("other/3:12.5") == ("other/3", 12.5)


# -- torch ---------------------------------------------------------------------------------------
def test_torch_model_is_served_over_v1_and_v2(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    automl.save_model(net, directory=tmp_path, input_example=torch.zeros(1, 4))
    predictor = load_predictor(tmp_path, name="net", version="torch-1")
    endpoint = Endpoint("net", Backend(predictor, make_explainer(predictor)))
    rows = X[[0, 50, 100]].astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(rows)).numpy()
    with BackgroundServer(create_app(endpoint)) as srv:
        r = httpx.post(f"{srv.url}/v2/models/net/infer", json=v2_body(rows, "FP32"))
        assert r.status_code == 200, r.text
        [out] = r.json()["outputs"]
        assert out["datatype"] == "FP32" and out["shape"] == [3, 3]
        np.testing.assert_allclose(np.reshape(out["data"], (3, 3)), expected, rtol=1e-5)
        r1 = httpx.post(f"{srv.url}/v1/models/net:predict", json={"instances": rows.tolist()})
        np.testing.assert_allclose(r1.json()["predictions"], expected, rtol=1e-5)
        meta = httpx.get(f"{srv.url}/v2/models/net").json()
        assert meta["platform"] == "pytorch"
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
        wrong = httpx.post(f"{srv.url}/v1/models/net:predict", json={"instances": [[1.0] * 5]})
        assert wrong.status_code == 400 and "expects [4]" in wrong.json()["error"]
        ex = httpx.post(f"{srv.url}/v1/models/net:explain", json={"instances": rows.tolist()})
        assert ex.status_code == 501 and "no explainer" in ex.json()["error"]


def test_predict_proba_answers_with_class_probabilities(lab: Lab) -> None:
    with lab.client() as client:
        endpoint, _ = build_endpoint(client, "iris-rf", predict_proba=True, explainer="none")
    model = endpoint.default.predictor.model
    rows = X[[0, 100]]
    with BackgroundServer(create_app(endpoint)) as srv:
        v1 = httpx.post(f"{srv.url}/v1/models/iris-rf:predict", json={"instances": rows.tolist()})
        np.testing.assert_allclose(v1.json()["predictions"], model.predict_proba(rows))
        v2 = httpx.post(f"{srv.url}/v2/models/iris-rf/infer", json=v2_body(rows))
        [out] = v2.json()["outputs"]
        assert out["shape"] == [2, 3] and out["datatype"] == "FP64"
        meta = httpx.get(f"{srv.url}/v2/models/iris-rf").json()
        assert meta["outputs"] == [{"name": "output-0", "datatype": "FP64", "shape": [-1, 3]}]
        ex = httpx.post(f"{srv.url}/v1/models/iris-rf:explain", json={"instances": [[1.0] * 4]})
        assert ex.status_code == 501  # --explainer none


# -- models that cannot be served: clear errors before anything listens -------------------------
def test_models_that_do_not_load_are_refused_with_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    automl.save_model(LogisticRegression(max_iter=500).fit(X, Y), directory=broken)
    (broken / "model.joblib").write_bytes(b"not a joblib file")
    with pytest.raises(AutoMLError, match="cannot load model 'model'"):
        load_predictor(broken, name="m", version="v")
    with pytest.raises(NotFoundError, match=r"no saved model 'other' .*saved models: model"):
        load_predictor(broken, "other", name="m", version="v")

    def local_module() -> Any:  # a class defined in a function does not pickle
        class Local(torch.nn.Module):
            def forward(self, x: Any) -> Any:
                return x

        return Local()

    automl.save_model(local_module(), directory=tmp_path / "state")
    with pytest.raises(AutoMLError, match="state dict only"):
        load_predictor(tmp_path / "state", name="m", version="v")


def test_serving_an_experiment_without_a_model_is_a_clean_error(lab: Lab) -> None:
    with lab.client() as client, pytest.raises(NotFoundError, match="saved no model 'model'"):
        build_endpoint(client, "no-model")
    runner = CliRunner()
    base = ["--store", lab.store, "--runs-dir", str(lab.runs), "--port", "0"]
    for name, needle in [
        ("no-model", "saved no model"),
        ("tulips", "no experiment named 'tulips'"),
        ("iris-lr/9", "has no trial '9'"),
    ]:
        r = runner.invoke(app, ["serve", name, *base])
        assert r.exit_code == 2, r.output
        assert needle in r.output and "Traceback" not in r.output
    help_ = runner.invoke(app, ["serve", "--help"])
    assert help_.exit_code == 0 and "--canary" in help_.output and "--transformer" in help_.output
    r = runner.invoke(app, ["serve", "iris-lr", *base, "--canary", "iris-rf:0"])
    assert r.exit_code == 2 and "--canary: PERCENT must be in (0, 100]" in r.output


# -- KServe manifests ---------------------------------------------------------------------------
def test_kserve_export_writes_a_valid_inference_service(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "isvc.yaml"  # from any directory: the store records where artifacts are
    r = CliRunner().invoke(
        app, ["export", "iris-rf", "--store", lab.store, "--format", "kserve", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    manifest = yaml.safe_load(out.read_text())
    validate_inference_service(manifest)
    with lab.client() as client:
        best = client.best_trial("iris-rf")
    assert best is not None
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == "iris-rf"
    model = manifest["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "sklearn"}
    assert model["storageUri"] == f"pvc://automl-runs/iris-rf/{best.id}/artifacts"
    assert manifest["metadata"]["annotations"]["automl.dev/trial"] == best.id


def test_kserve_manifest_with_canary_transformer_and_explainer_validates(lab: Lab) -> None:
    with lab.client() as client:
        m = inference_service_for(
            client,
            "iris-lr",
            trial=0,
            storage_uri="s3://models/iris-lr/0",
            protocol="v2",
            namespace="ml",
            canary_traffic_percent=20,
            transformer_image="registry.local/flowers-transformer:1",
            transformer_args=["--model_name", "iris-lr"],
            explainer_image="registry.local/iris-explainer:1",
        )
    spec = m["spec"]
    assert spec["predictor"]["canaryTrafficPercent"] == 20
    assert spec["predictor"]["model"]["protocolVersion"] == "v2"
    assert spec["transformer"]["containers"][0]["image"] == "registry.local/flowers-transformer:1"
    assert spec["explainer"]["containers"][0]["name"] == "kserve-container"


def _good() -> dict[str, Any]:
    return inference_service("iris", model_format="sklearn", storage_uri="gs://b/iris")


@pytest.mark.parametrize(
    ("break_it", "path"),
    [
        (lambda m: m["metadata"].update(name="Iris_Model"), "metadata.name"),
        (lambda m: m["spec"]["predictor"]["model"].pop("modelFormat"), "spec.predictor.model"),
        (lambda m: m["spec"]["predictor"].update(canaryTraffic=10), "spec.predictor"),
        (
            lambda m: m["spec"]["predictor"].update(canaryTrafficPercent="10"),
            "canaryTrafficPercent",
        ),
        (
            lambda m: m["spec"]["predictor"].update(canaryTrafficPercent=150),
            "canaryTrafficPercent",
        ),
        (lambda m: m["spec"]["predictor"].update(scaleMetric="gpu"), "scaleMetric"),
        (
            lambda m: m["spec"]["predictor"]["model"]["resources"]["limits"].update(cpu="lots"),
            "resources.limits.cpu",
        ),
        (lambda m: m["spec"]["predictor"]["model"].update(storageUri="ftp://x/y"), "storageUri"),
        (lambda m: m["spec"].pop("predictor"), "spec"),
        (lambda m: m.update(kind="Deployment"), "kind"),
        (
            lambda m: m["spec"].update(transformer={"containers": [{"image": "x"}]}),
            "spec.transformer.containers[0]",
        ),
        (
            lambda m: m["spec"]["predictor"].update(minReplicas=3, maxReplicas=2),
            "spec.predictor.minReplicas",
        ),
    ],
)
def test_broken_inference_services_are_rejected_naming_the_field(break_it: Any, path: str) -> None:
    validate_inference_service(_good())
    m = _good()
    break_it(m)
    with pytest.raises(SpecError) as exc:
        validate_inference_service(m)
    assert any(path in issue.path for issue in exc.value.issues), exc.value.issues


def test_pod_fields_are_checked_with_kubernetes_validate() -> None:
    m = _good()
    m["spec"]["predictor"]["model"]["ports"] = [{"containerPort": "http"}]
    with pytest.raises(SpecError, match="containerPort"):
        validate_inference_service(m)


# -- the example, end to end: tune, `automl serve` in a subprocess, query.py --------------------
def _wait_for_url(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    lines = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("serving model"):
            return line.split(" at ")[1].strip()
    proc.kill()
    raise AssertionError("automl serve did not start:\n" + "".join(lines))


def _run_script(
    script: Path, args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str]
) -> str:
    """Run an example script as ``python script args`` would, in this process (no start-up)."""
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = [str(script), *args]
    os.chdir(cwd)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            out = capsys.readouterr().out
            raise AssertionError(f"{script.name} failed: {exc.code}\n{out}") from None
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return capsys.readouterr().out


def test_example_tune_serve_query_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = REPO / "examples" / "serve-sklearn"
    store = f"sqlite:///{tmp_path / 'automl.db'}"
    tuned = _run_script(example / "tune.py", ["--store", store, "--trials", "3"], tmp_path, capsys)
    assert "best accuracy=" in tuned
    assert (tmp_path / "automl-runs" / "wine").is_dir()
    proc = subprocess.Popen(  # `automl serve`, as a user runs it
        [sys.executable, "-m", "automl", "serve", "wine", "--store", store, "--port", "0"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = _wait_for_url(proc)
        assert url.startswith("http://127.0.0.1:")
        out = _run_script(example / "query.py", [url, "--model", "wine"], tmp_path, capsys)
        assert "v1 predictions=[0, 2]" in out
        assert "v2 id=wine-1 output-0 INT64[2]=[0, 2]" in out
        assert "v1 explain method=shapley-permutation class=0" in out
        assert "malformed -> 400" in out
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    assert "stopped" in output and "Traceback" not in output
