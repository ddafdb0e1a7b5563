"""Query a served wine model with KServe's v1 and v2 (Open Inference) protocols.

    python query.py http://127.0.0.1:8080 --model wine

Sends two wines (one of class 0, one of class 2, rows of scikit-learn's wine data) to
``:predict``, ``:explain`` and ``/infer`` and prints what comes back; exits non-zero if any
request fails.
"""

import argparse
import sys

import httpx

WINES = [
    [14.23, 1.71, 2.43, 15.6, 127.0, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065.0],
    [13.27, 4.28, 2.26, 20.0, 120.0, 1.59, 0.69, 0.43, 1.35, 10.2, 0.59, 1.56, 835.0],
]
FEATURES = [
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
    "od280/od315_of_diluted_wines", "proline",
]  # fmt: skip


def check(r: httpx.Response) -> dict:
    if r.status_code != 200:
        sys.exit(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}")
    return r.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--model", default="wine")
    args = parser.parse_args()
    base, name = args.url.rstrip("/"), args.model

    with httpx.Client(base_url=base, timeout=30) as http:
        check(http.get("/v2/health/ready"))

        # KServe v1: {"instances": [...]} -> {"predictions": [...]}
        r = http.post(f"/v1/models/{name}:predict", json={"instances": WINES})
        v1 = check(r)
        print(f"v1 predictions={v1['predictions']} answered by {r.headers['x-automl-model']}")

        # v1 explain: per-feature attributions of the predicted class's probability
        ex = check(http.post(f"/v1/models/{name}:explain", json={"instances": WINES[:1]}))
        e = ex["explanations"][0]
        pairs = zip(FEATURES, e["attributions"], strict=True)
        top = sorted(pairs, key=lambda t: -abs(t[1]))[:3]
        print(
            f"v1 explain method={ex['method']} class={e['target']} value={e['value']:.3f} "
            f"baseline={e['baseline_value']:.3f} top=" + ", ".join(f"{f}:{a:+.3f}" for f, a in top)
        )

        # Open Inference Protocol v2: a [2, 13] FP64 tensor, row-major
        meta = check(http.get(f"/v2/models/{name}"))
        print(f"v2 metadata inputs={meta['inputs']} versions={meta['versions']}")
        body = {
            "id": "wine-1",
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(WINES), len(WINES[0])],
                    "datatype": "FP64",
                    "data": [v for row in WINES for v in row],
                }
            ],
        }
        v2 = check(http.post(f"/v2/models/{name}/infer", json=body))
        out = v2["outputs"][0]
        print(f"v2 id={v2['id']} {out['name']} {out['datatype']}{out['shape']}={out['data']}")

        # A malformed request is refused with a JSON error; the server keeps serving.
        bad = http.post(f"/v1/models/{name}:predict", json={"instances": [[1.0, 2.0]]})
        print(f"malformed -> {bad.status_code} {bad.json()['error']}")
        if bad.status_code != 400 or v1["predictions"] != out["data"]:
            sys.exit("unexpected answers")


if __name__ == "__main__":
    main()
