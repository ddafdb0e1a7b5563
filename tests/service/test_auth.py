"""Bearer tokens on every route: the test enumerates the app's routes; a new one cannot skip it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from automl.service._app import create_app
from automl.service._auth import OPEN_PATHS, load_tokens
from tests.service.conftest import PY, REPO, spec_text

RO = "r" * 20
RW = "w" * 20


@pytest.fixture
def app(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("AUTOML_TOKENS", f"{RO}:ro,{RW}:rw")
    return create_app(sqlite_url, tokens=load_tokens(), max_body=4096)


def _routes(app: object) -> list[tuple[str, str]]:
    fastapi_app = app.app  # type: ignore[attr-defined]
    out = []
    for r in fastapi_app.routes:
        assert isinstance(r, Route), r
        path = re.sub(r"\{[^}]+\}", "x", r.path)
        for method in sorted(r.methods or ()):
            out.append((method, path))
    return out


def test_every_route_checks_the_token(app: object) -> None:
    routes = _routes(app)
    # The API is all there: a route list that shrank would make this test vacuous.
    assert ("POST", "/api/v1/experiments") in routes
    assert ("POST", "/api/v1/experiments/x/trials:ask") in routes
    assert ("GET", "/metrics") in routes and ("GET", "/docs") in routes
    assert len(routes) >= 18
    with TestClient(app) as http:  # type: ignore[arg-type]
        for method, path in routes:
            bare = http.request(method, path)
            wrong = http.request(method, path, headers={"Authorization": "Bearer " + "z" * 20})
            if path in OPEN_PATHS:
                assert bare.status_code == 200, (method, path)
                continue
            assert bare.status_code == 401, (method, path, bare.status_code)
            assert wrong.status_code == 401, (method, path, wrong.status_code)
            assert bare.headers["www-authenticate"].startswith("Bearer")
            ro = http.request(method, path, headers={"Authorization": f"Bearer {RO}"})
            rw = http.request(method, path, headers={"Authorization": f"Bearer {RW}"})
            if method in ("GET", "HEAD"):
                assert ro.status_code not in (401, 403), (method, path, ro.status_code)
            else:
                assert ro.status_code == 403, (method, path, ro.status_code)
            assert rw.status_code not in (401, 403), (method, path, rw.status_code)
    assert {"/healthz"} == OPEN_PATHS


def test_no_token_reveals_nothing(app: object) -> None:
    with TestClient(app) as http:  # type: ignore[arg-type]
        rw = {"Authorization": f"Bearer {RW}"}
        created = http.post("/api/v1/experiments", content=spec_text("exists"), headers=rw)
        assert created.status_code == 201, created.text
        a = http.get("/api/v1/experiments/exists")
        b = http.get("/api/v1/experiments/missing")
        c = http.get("/api/v1/no/such/route")
        assert a.status_code == b.status_code == c.status_code == 401
        assert a.json() == b.json() == c.json()


def test_body_limit_is_413_before_and_after_auth(app: object) -> None:
    with TestClient(app) as http:  # type: ignore[arg-type]
        rw = {"Authorization": f"Bearer {RW}"}
        big = "#" * 5000 + spec_text("big")
        r = http.post("/api/v1/experiments", content=big, headers=rw)
        assert r.status_code == 413 and r.json()["error"] == "too_large"

        def chunks():  # no Content-Length: counted while it streams
            for _ in range(10):
                yield b"#" * 1000

        r = http.post("/api/v1/experiments", content=chunks(), headers=rw)
        assert r.status_code == 413
        assert http.get("/api/v1/experiments/big", headers=rw).status_code == 404


def test_tokens_file_and_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text(f"# team tokens\n{RW} rw\n{RO}\n")
    tokens = load_tokens(f)
    assert tokens is not None and tokens.mode(RW) == "rw" and tokens.mode(RO) == "ro"
    assert tokens.mode("nope") is None
    f.write_text(f"{RW} admin\n")
    with pytest.raises(Exception, match=r"tokens:1: must be 'TOKEN \[ro\|rw\]'"):
        load_tokens(f)
    f.write_text("short rw\n")
    with pytest.raises(Exception, match="at least 16 characters"):
        load_tokens(f)


def test_non_loopback_bind_needs_tokens(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [PY, "-m", "automl", "server", "--host", "0.0.0.0", "--store", str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "--host: binding 0.0.0.0 exposes the service" in out.stderr
    assert "AUTOML_TOKENS" in out.stderr
