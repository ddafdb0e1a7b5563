"""The CLI and automl.Client against a real server (subprocesses on 127.0.0.1, real SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

import automl
from automl.errors import AlreadyExistsError, AutoMLError, NotFoundError, SpecError
from tests.service.conftest import PY, REPO, Procs, spec_text, wait_for


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "automl", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"},
    )


def js(out: subprocess.CompletedProcess[str]) -> object:
    assert out.stdout.strip(), (out.args, out.returncode, out.stderr)
    return json.loads(out.stdout)


@pytest.fixture
def served(procs: Procs, tmp_path: Path) -> tuple[str, str]:
    store = f"sqlite:///{tmp_path / 'service.db'}"
    return procs.server(store, "--workers", "1", "--lease", "10", "--runs-dir", "runs"), store


def test_cli_against_the_server(served: tuple[str, str], tmp_path: Path) -> None:
    url, store = served
    f = tmp_path / "exp.yaml"
    f.write_text(spec_text("via-cli", trials=3, parallel=2))
    out = cli(tmp_path, "submit", str(f), "--server", url, "--json")
    assert out.returncode == 0, out.stderr
    assert js(out) == {"name": "via-cli", "state": "Created", "priority": 0}
    with automl.Client(server=url) as c:
        wait_for(lambda: c.get("via-cli").state.is_terminal, 120, "the worker to finish it")
    # Every read command says the same through the server as on the store.
    for args in (["list", "--json"], ["show", "via-cli", "--json"], ["best", "via-cli", "--json"]):
        remote = cli(tmp_path, *args, "--server", url)
        local = cli(tmp_path, *args, "--store", store)
        assert remote.returncode == local.returncode == 0, remote.stderr
        assert js(remote) == js(local)
    shown = js(cli(tmp_path, "show", "via-cli", "--json", "--server", url))
    assert shown["state"] == "Succeeded" and shown["trials"] == {"Succeeded": 3}
    # Errors: the same line and exit code 2 both ways.
    for args in (["show", "nope"], ["stop", "nope"], ["delete", "nope", "-y"]):
        remote = cli(tmp_path, *args, "--server", url)
        local = cli(tmp_path, *args, "--store", store)
        assert remote.returncode == local.returncode == 2
        assert remote.stderr == local.stderr
        assert "no experiment named 'nope'" in remote.stderr
    # A name that exists: 409, said as the store says it.
    again = cli(tmp_path, "submit", str(f), "--server", url)
    assert again.returncode == 2 and "experiment 'via-cli' already exists" in again.stderr
    # Resume with a raised budget goes back through the queue and a worker finishes it.
    out = cli(tmp_path, "resume", "via-cli", "--max-trials", "4", "--server", url, "--json")
    assert out.returncode == 0, out.stderr
    assert js(out)["trials"] == {"Succeeded": 4}
    katib = cli(tmp_path, "export", "via-cli", "--server", url)
    assert (
        katib.returncode == 0
        and katib.stdout == cli(tmp_path, "export", "via-cli", "--store", store).stdout
    )
    assert cli(tmp_path, "delete", "via-cli", "-y", "--server", url).returncode == 0
    assert cli(tmp_path, "show", "via-cli", "--server", url).returncode == 2
    # run --server: overrides applied here, the worker runs it, the summary prints here.
    out = cli(tmp_path, "run", str(f), "--name", "via-run", "--max-trials", "2", "--server", url)
    assert out.returncode == 0, out.stderr
    assert "via-run: Succeeded (ExperimentMaxTrialsReached)" in out.stdout
    assert "2 trials: 2 succeeded" in out.stdout


def test_bad_spec_is_422_with_every_issue_as_validate_prints_it(
    served: tuple[str, str], tmp_path: Path
) -> None:
    url, _ = served
    f = tmp_path / "bad.yaml"
    f.write_text(
        spec_text("bad").replace("max: 1}", "max: -1}").replace("max_trials: 2", "max_trials: 0")
    )
    validate = cli(tmp_path, "validate", str(f))
    submit = cli(tmp_path, "submit", str(f), "--server", url)
    assert validate.returncode == submit.returncode == 2
    assert validate.stderr.count("\n") >= 2  # several issues, each on its line
    assert submit.stderr == validate.stderr
    r = httpx.post(f"{url}/api/v1/experiments", content=f.read_text())
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid"
    lines = [f"{f}: {i['path']}: {i['message']}" for i in body["issues"]]
    assert "\n".join(lines) + "\n" == validate.stderr
    assert httpx.get(f"{url}/api/v1/experiments/bad").status_code == 404
    r = httpx.post(f"{url}/api/v1/experiments", content=f.read_text(), params={"priority": "x"})
    assert r.status_code == 422 and r.json()["issues"][0]["path"] == "priority"


def test_client_against_the_server(served: tuple[str, str], tmp_path: Path) -> None:
    url, store = served
    f = tmp_path / "exp.yaml"
    f.write_text(spec_text("via-client", trials=2))
    with automl.Client(server=url) as remote, automl.Client(store) as local:
        e = remote.submit(f, priority=5)
        assert e.state.value == "Created"
        result = remote.run(
            automl.core.ExperimentSpec.from_json(
                local.get("via-client").spec.model_copy(update={"name": "via-client-2"}).to_json()
            )
        )
        assert result.experiment.state.value == "Succeeded" and len(result.trials) == 2
        remote.wait("via-client", timeout=120, poll=0.2)
        assert remote.get("via-client") == local.get("via-client")
        assert remote.trials("via-client") == local.trials("via-client")
        assert remote.best_trial("via-client") == local.best_trial("via-client")
        t = local.trials("via-client")[0]
        assert remote.trial("via-client", t.id) == t
        assert len(remote.observations("via-client")) == len(local.observations("via-client"))
        for call in (
            lambda c: c.get("nope"),
            lambda c: c.trials("nope"),
            lambda c: c.stop("nope"),
        ):
            with pytest.raises(NotFoundError) as a:
                call(remote)
            with pytest.raises(NotFoundError) as b:
                call(local)
            assert str(a.value) == str(b.value)
        with pytest.raises(AlreadyExistsError, match="already exists"):
            remote.submit(f)
        with pytest.raises(SpecError) as bad:
            remote.requeue("via-client", max_trials=0)
        assert bad.value.issues[0].path == "max_trials"
        with pytest.raises(AutoMLError, match="has no store"):
            remote.store  # noqa: B018
    with pytest.raises(AutoMLError, match="cannot reach automl server"):
        automl.Client(server="http://127.0.0.1:9").list()


def test_metrics_and_workers(served: tuple[str, str], tmp_path: Path) -> None:
    url, _ = served
    f = tmp_path / "exp.yaml"
    f.write_text(spec_text("metered", trials=2))
    with automl.Client(server=url) as c:
        c.submit(f)
        c.wait("metered", timeout=120, poll=0.2)
    text = httpx.get(f"{url}/metrics").text
    assert 'automl_experiments{state="Succeeded"} 1.0' in text
    assert "automl_trials_started_total 2.0" in text
    assert "automl_queue_depth 0.0" in text
    assert "automl_lease_takeovers_total 0.0" in text
    # The controller ran in a worker's child process: its turns reach /metrics through the store
    # (two trials, each started in one turn and ended in another).
    turns = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("automl_controller_turn_seconds")
    }
    assert turns["automl_controller_turn_seconds_count"] >= 4
    assert (
        turns['automl_controller_turn_seconds_bucket{le="+Inf"}']
        == (turns["automl_controller_turn_seconds_count"])
    )
    assert turns["automl_controller_turn_seconds_sum"] > 0
    assert (
        'automl_http_request_seconds_count{method="POST",route="/api/v1/experiments"} 1.0' in text
    )
    workers = httpx.get(f"{url}/api/v1/workers").json()
    assert len(workers) == 1 and workers[0]["max_experiments"] == 4
    assert httpx.get(f"{url}/docs").status_code == 200
    assert (
        "/api/v1/experiments/{name}/trials:ask" in httpx.get(f"{url}/openapi.json").json()["paths"]
    )
