"""Warm trial starts (``trial.warm.preload``): a trial forked from a fork server with its imports
done is indistinguishable from a cold one to its script (argv, environment, working directory,
``__main__``, ``sys.path[0]``, stdin, stdout/stderr capture, exit codes, signals), is killed
with its whole process group, is adopted after its controller dies, never inherits a CUDA
context, and falls back to a cold start when a module cannot be preloaded."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from automl.spec import load_spec
from tests.test_controller import wait_for
from tests.trials.test_local import alive, wait_gone, write_exp
from trials import ExitStatus, LocalProcessExecutor, TrialEvent, TrialRun
from trials._supervise import _processes

pytestmark = pytest.mark.integration

PROBE = """
import json, os, sys
print(json.dumps({
    "argv": sys.argv,
    "name": __name__,
    "cwd": os.getcwd(),
    "path0": sys.path[0],
    "env": os.environ.get("PROBE_ENV"),
    "trial": json.loads(os.environ["AUTOML_TRIAL"])["id"],
    "stdin": sys.stdin.read(),
    "preloaded_json_decoder": "json.decoder" in sys.modules,
    "sigterm": str(__import__("signal").getsignal(__import__("signal").SIGTERM)),
}), flush=True)
print("to stderr", file=sys.stderr, flush=True)
print("loss=0.25")
kind = sys.argv[-1]
if kind == "exit3":
    sys.exit(3)
if kind == "raise":
    raise ValueError("boom")
if kind == "signal":
    os.kill(os.getpid(), 15)
"""


def run_one(ex: LocalProcessExecutor, run: TrialRun, timeout: float = 60) -> list[TrialEvent]:
    ex.submit(run)
    events: list[TrialEvent] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        events.extend(ex.poll(0.2))
        if any(e.exit is not None for e in events):
            return events
    raise AssertionError(f"{run.trial_id} did not end: {events}")


def _outcome(events: list[TrialEvent], log: Path) -> dict[str, Any]:
    exit_ = next(e.exit for e in events if e.exit is not None)
    lines = [
        line for line in log.read_text().splitlines() if line and not line.startswith("[automl]")
    ]
    probe = json.loads(lines[0])
    probe["trial"] = "x"  # differs by design: the trial id
    return {
        "status": exit_.status,
        "message": exit_.message.splitlines()[0] if exit_.message else "",
        "probe": probe,
        "rest": lines[1:],
        "metrics": [dict(e.metrics) for e in events if e.metrics],
    }


@pytest.mark.parametrize("kind", ["ok", "exit3", "raise", "signal"])
def test_a_warm_trial_is_indistinguishable_from_a_cold_one(tmp_path: Path, kind: str) -> None:
    command = ["python", "script.py", "--x=${x}", kind]
    cold_f = write_exp(tmp_path, PROBE, command=command, trial={"env": {"PROBE_ENV": "v"}})
    cold = LocalProcessExecutor(load_spec(cold_f), tmp_path / "runs")
    warm_f = write_exp(
        tmp_path,
        PROBE,
        command=command,
        trial={"env": {"PROBE_ENV": "v"}, "warm": {"preload": ["json", "sqlite3"]}},
    )
    warm = LocalProcessExecutor(load_spec(warm_f), tmp_path / "runs")
    try:
        c = run_one(cold, TrialRun("t-cold", "exp", 0, {"x": 0.5}))
        w = run_one(warm, TrialRun("t-warm", "exp", 1, {"x": 0.5}))
    finally:
        cold.close()
        warm.close()
    started = next(e.started for e in w if e.started)
    assert started.get("warm") is True  # it really was forked from the server
    cold_out = _outcome(c, tmp_path / "runs" / "exp" / "t-cold" / "trial.log")
    warm_out = _outcome(w, tmp_path / "runs" / "exp" / "t-warm" / "trial.log")
    if kind == "signal":  # a cold trial's shell supervisor notes the signal, as a terminal does
        assert cold_out["rest"][-1] == "Terminated"
        cold_out["rest"] = cold_out["rest"][:-1]
    if kind == "raise":  # the traceback names the same file and line; frames above differ
        cold_out["rest"] = [r for r in cold_out["rest"] if "ValueError: boom" in r]
        warm_out["rest"] = [r for r in warm_out["rest"] if "ValueError: boom" in r]
    assert warm_out == cold_out
    expected = {
        "ok": ExitStatus.COMPLETED,
        "exit3": ExitStatus.FAILED,
        "raise": ExitStatus.FAILED,
        # SIGTERM that the controller did not send reads as preemption (a spot VM going away),
        # cold and warm alike: the trial runs again (issue "steering").
        "signal": ExitStatus.PREEMPTED,
    }[kind]
    assert warm_out["status"] is expected
    if kind == "signal":
        assert "signal 15" in warm_out["message"] or "SIGTERM" in warm_out["message"]
    if kind == "exit3":
        assert "exit code 3" in warm_out["message"]
    assert warm_out["probe"]["name"] == "__main__" and warm_out["probe"]["stdin"] == ""
    assert warm_out["probe"]["argv"] == ["script.py", "--x=0.5", kind]


HOLD = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "pids"), "w") as fh:
    fh.write(f"{os.getpid()} {child.pid}")
print("torch_preloaded=" + str("torch" in sys.modules), flush=True)
import torch
print("cuda_initialized=" + str(torch.cuda.is_initialized()), flush=True)
while not os.path.exists(os.path.join(os.environ["AUTOML_TRIAL_DIR"], "go")):
    time.sleep(0.02)
print("loss=0.5", flush=True)
"""


def _pids(workdir: Path) -> list[int]:
    end = time.monotonic() + 60
    f = workdir / "pids"
    while not (f.exists() and f.read_text().strip()) and time.monotonic() < end:
        time.sleep(0.05)
    return [int(p) for p in f.read_text().split()]


def test_a_warm_trial_is_killed_with_its_process_group(tmp_path: Path) -> None:
    f = write_exp(tmp_path, HOLD, trial={"warm": {"preload": ["torch"]}})
    ex = LocalProcessExecutor(load_spec(f), tmp_path / "runs")
    try:
        ex.submit(TrialRun("t-1", "exp", 0, {"x": 0.5}))
        pids = _pids(tmp_path / "runs" / "exp" / "t-1")
        assert all(alive(p) for p in pids)
        ex.cancel("t-1")
        events: list[TrialEvent] = []
        end = time.monotonic() + 30
        while not any(e.exit for e in events) and time.monotonic() < end:
            events.extend(ex.poll(0.2))
        exit_ = next(e.exit for e in events if e.exit is not None)
        assert exit_.status is ExitStatus.CANCELLED
        assert wait_gone(pids) == []
        log = (tmp_path / "runs" / "exp" / "t-1" / "trial.log").read_text()
        # torch was imported by the server before the script ran, and CUDA was never touched
        assert "torch_preloaded=True" in log and "cuda_initialized=False" in log
    finally:
        ex.close()


def test_a_warm_trial_outlives_its_controller_and_is_adopted(tmp_path: Path) -> None:
    f = write_exp(tmp_path, HOLD, trial={"warm": {"preload": ["json"]}})
    spec = load_spec(f)
    first = LocalProcessExecutor(spec, tmp_path / "runs")
    run = TrialRun("t-1", "exp", 0, {"x": 0.5})
    first.submit(run)
    workdir = tmp_path / "runs" / "exp" / "t-1"
    pids = _pids(workdir)
    started = None
    end = time.monotonic() + 30
    while started is None and time.monotonic() < end:
        started = next((e.started for e in first.poll(0.2) if e.started), None)
    assert started is not None
    first._closed.set()  # the controller "dies": its monitor stops, nothing is killed
    assert first._warm is not None
    first._warm.close()  # and its fork server goes with it
    second = LocalProcessExecutor(spec, tmp_path / "runs")
    try:
        assert second.adopt(run, started)
        assert all(alive(p) for p in pids)  # the same processes, not a new run
        (workdir / "go").touch()
        events: list[TrialEvent] = []
        end = time.monotonic() + 30
        while not any(e.exit for e in events) and time.monotonic() < end:
            events.extend(second.poll(0.2))
        exit_ = next(e.exit for e in events if e.exit is not None)
        assert exit_.status is ExitStatus.COMPLETED
        assert {"loss": 0.5} in [dict(e.metrics) for e in events]
    finally:
        second.close()
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)


def test_a_module_that_cannot_be_preloaded_falls_back_to_a_cold_start(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        PROBE,
        command=["python", "script.py", "--x=${x}", "ok"],
        trial={"warm": {"preload": ["json", "automl_no_such_module_here"]}},
    )
    ex = LocalProcessExecutor(load_spec(f), tmp_path / "runs")
    try:
        events = run_one(ex, TrialRun("t-1", "exp", 0, {"x": 0.5}))
    finally:
        ex.close()
    exit_ = next(e.exit for e in events if e.exit is not None)
    assert exit_.status is ExitStatus.COMPLETED
    started = next(e.started for e in events if e.started)
    assert "warm" not in started
    log = (tmp_path / "runs" / "exp" / "t-1" / "trial.log").read_text()
    assert "warm start unavailable: preload failed" in log
    assert "automl_no_such_module_here: ModuleNotFoundError" in log


def test_a_preload_name_that_is_not_a_module_is_a_spec_error(tmp_path: Path) -> None:
    from automl.errors import SpecError

    f = write_exp(tmp_path, PROBE, trial={"warm": {"preload": ["os; rm -rf /"]}})
    with pytest.raises(SpecError) as info:
        load_spec(f)
    assert any("trial.warm.preload" in i.path for i in info.value.issues)


_WARM_OBJECTIVE = """
import sys


def objective(x):
    return 1.0 if "xml.dom.minidom" in sys.modules else 0.0  # imported by the warm server only
"""


def test_tune_warm_forks_function_trial_processes_from_a_preloaded_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import automl

    (tmp_path / "warm_objective.py").write_text(_WARM_OBJECTIVE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the trial processes import it too
    from warm_objective import objective  # type: ignore[import-not-found]

    def tune(name: str, **kw: Any) -> list[float]:
        res = automl.tune(
            objective,
            {"x": automl.double(0, 1)},
            objective_metric="warm",
            direction="maximize",
            max_trials=2,
            store=f"sqlite:///{tmp_path / 'store.db'}",
            runs_dir=tmp_path / "runs",
            name=name,
            trial_processes=True,
            progress=False,
            **kw,
        )
        return list(res.trials["value"])

    assert tune("warm", warm=["xml.dom.minidom"]) == [1.0, 1.0]
    assert tune("cold") == [0.0, 0.0]  # a cold trial process has not imported it


def test_tune_warm_needs_trial_processes_and_module_names(tmp_path: Path) -> None:
    import automl
    from automl.errors import SpecError

    for bad, rule in (
        ({"warm": ["torch"]}, "trial_processes=True or executor='ray'"),
        ({"warm": "torch", "trial_processes": True}, "list of module names"),
        ({"warm": ["a b"], "trial_processes": True}, "list of module names"),
    ):
        with pytest.raises(SpecError) as err:
            automl.tune(
                lambda x: x,
                {"x": automl.double(0, 1)},
                max_trials=1,
                store=f"sqlite:///{tmp_path / 'store.db'}",
                progress=False,
                **bad,
            )
        assert any(i.path == "warm" and rule in i.message for i in err.value.issues), err.value


def test_the_end_of_a_process_that_is_not_our_child_is_seen_when_it_happens() -> None:
    """trials._supervise.on_exit: a warm or adopted trial's supervisor is not the executor's
    child; a pidfd tells the monitor the moment it exits, instead of at its next look."""
    import subprocess
    import sys
    import threading

    from trials._supervise import on_exit

    # A grandchild whose parent has exited: reparented, not ours (as a warm trial's supervisor).
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(600)'], start_new_session=True, "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(out.stdout)
    ended = threading.Event()
    assert on_exit(pid, ended.set)
    assert not ended.wait(0.2)  # it runs: no call yet
    os.kill(pid, signal.SIGKILL)
    assert ended.wait(30)  # called once the process is gone (no polling on our side)


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is ``pid`` (Linux ``/proc``)."""
    return [(p, state) for p, state, parent, _ in _processes() or [] if parent == pid]


def _exit_status(workdir: Path) -> str:
    return wait_for(
        lambda: (workdir / "exit_status").exists() and (workdir / "exit_status").read_text(),
        30,
        "the exit status",
    )


SPARE_PROBE = """
import os, sys
print("big", len(os.environ["BIG"]), "arg", sys.argv[1], flush=True)
sys.exit(int(sys.argv[1]))
"""


def test_the_server_keeps_spares_and_leaves_no_process_behind(tmp_path: Path) -> None:
    """The fork server keeps one spare trial process (with its supervisor) per trial that may
    run at once, hands each trial to one (its whole request, however large, reaches the script),
    forks a new spare, reaps the trials' processes (no zombies), and takes its spares with it
    when it closes."""
    import sys

    from trials._launch import python_command
    from trials._warm import WarmPool

    script = tmp_path / "probe.py"
    script.write_text(SPARE_PROBE)
    pool = WarmPool(["json"], spares=3)
    try:
        assert pool._start()
        assert pool._proc is not None
        server = pool._proc.pid
        spares = _children(server)
        assert len(spares) == 3  # made before the server said it was ready
        # each with its trial's process (which its supervisor forks, perhaps a moment later)
        waiting = wait_for(
            lambda: (
                (w := {s: [c for c, _ in _children(s)] for s, _ in spares})
                and all(len(c) == 1 for c in w.values())
                and w
            ),
            30,
            "each spare's trial process",
        )
        assert waiting and all(len(c) == 1 for c in waiting.values()), waiting
        env = dict(os.environ, BIG="x" * 300_000)  # far more than a pipe holds at once
        used = []
        for i in range(5):
            workdir = tmp_path / f"t{i}"
            workdir.mkdir()
            program = python_command([sys.executable, str(script), str(i + 3)])
            pid = pool.spawn(program, env, tmp_path, workdir)
            assert pid is not None
            used.append(pid)
            assert _exit_status(workdir) == f"{i + 3}\n"
            assert f"big 300000 arg {i + 3}" in (workdir / "trial.log").read_text()
            assert (workdir / "supervisor.pid").read_text() == f"{pid}\n"
        assert set(used[:3]) == set(waiting)  # the first trials took the spares made up front
        # Back to three waiting spares, and no zombie: the trials' processes were reaped.
        assert wait_for(
            lambda: len(kids := _children(server)) == 3 and all(s != "Z" for _, s in kids),
            30,
            "three waiting spares and no zombie",
        )
        left = [p for s, _ in _children(server) for p in (s, *(c for c, _ in _children(s)))]
    finally:
        pool.close()
    assert wait_gone(left) == []  # the spares saw the server's pipes close and left


def test_the_server_keeps_more_spares_only_when_more_trials_run_at_once(tmp_path: Path) -> None:
    """Trials one after another never need more spares than the server keeps (the previous
    test: back to three); three running at once on a server keeping two make it keep three."""
    import sys

    from trials._launch import python_command
    from trials._warm import WarmPool

    script = tmp_path / "hold.py"
    script.write_text(
        "import os, sys, time\n"
        "open('started', 'w').close()\n"
        "while not os.path.exists(sys.argv[1]):\n"
        "    time.sleep(0.01)\n"
    )
    go = tmp_path / "go"
    pool = WarmPool(["json"], spares=2)
    try:
        assert pool._start()
        assert pool._proc is not None
        server = pool._proc.pid
        workdirs = []
        for i in range(3):  # at once: the third finds no spare while two trials run
            workdir = tmp_path / f"t{i}"
            workdir.mkdir()
            program = python_command([sys.executable, str(script), str(go)])
            assert pool.spawn(program, dict(os.environ), workdir, workdir) is not None
            workdirs.append(workdir)
        for w in workdirs:
            wait_for(lambda w=w: (w / "started").exists(), 30, "the trial's start")
        go.touch()
        for w in workdirs:
            assert _exit_status(w) == "0\n"
        assert wait_for(
            lambda: len(kids := _children(server)) == 3 and all(s != "Z" for _, s in kids),
            30,
            "three waiting spares",
        )
    finally:
        pool.close()


def test_a_trial_killed_by_a_signal_ends_while_a_process_it_forked_lives_on(
    tmp_path: Path,
) -> None:
    """A trial's process reports its exit code to its supervisor just before it exits; one that
    is killed reports nothing, and its supervisor learns its end from the kernel even while a
    process it forked (which holds the report pipe) still runs."""
    import sys

    from trials._launch import python_command
    from trials._warm import WarmPool

    script = tmp_path / "fork_and_die.py"
    script.write_text(
        "import os, signal, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(600)\n"
        "    os._exit(0)\n"
        "open('grandchild', 'w').write(str(pid))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    pool = WarmPool(["json"], spares=1)
    workdir = tmp_path / "t"
    workdir.mkdir()
    grandchild = None
    try:
        pid = pool.spawn(
            python_command([sys.executable, str(script)]), dict(os.environ), workdir, workdir
        )
        assert pid is not None
        assert _exit_status(workdir) == "137\n"  # as a shell reports SIGKILL
        grandchild = int((workdir / "grandchild").read_text())
        assert alive(grandchild)
    finally:
        pool.close()
        if grandchild is not None and alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_a_spare_that_died_waiting_is_passed_over(tmp_path: Path) -> None:
    """A spare killed while it waited (by hand, by the OOM killer) ran nothing: the next trial
    goes to another spare (or a fresh one) instead of to a dead process."""
    import sys

    from trials._launch import python_command
    from trials._warm import WarmPool

    script = tmp_path / "probe.py"
    script.write_text(SPARE_PROBE)
    pool = WarmPool(["json"], spares=2)
    try:
        assert pool._start()
        assert pool._proc is not None
        server = pool._proc.pid
        spares = wait_for(lambda: len(k := _children(server)) == 2 and k, 30, "two spares")
        assert spares
        for sup, _ in spares:  # both spares: their trial processes, then the supervisors
            for child, _ in wait_for(lambda s=sup: _children(s), 30, "a spare's trial process"):
                os.kill(child, signal.SIGKILL)
            os.kill(sup, signal.SIGKILL)
        assert wait_gone([s for s, _ in spares]) == []
        workdir = tmp_path / "t"
        workdir.mkdir()
        pid = pool.spawn(
            python_command([sys.executable, str(script), "4"]),
            dict(os.environ, BIG="y"),
            tmp_path,
            workdir,
        )
        assert pid is not None and pid not in {s for s, _ in spares}
        assert _exit_status(workdir) == "4\n"
    finally:
        pool.close()


def _request(script: Path, workdir: Path, arg: str) -> dict[str, Any]:
    workdir.mkdir()
    return {
        "target": str(script),
        "module": False,
        "args": [arg],
        "env": dict(os.environ, BIG="z"),
        "cwd": str(workdir),
        "workdir": str(workdir),
        "log": str(workdir / "trial.log"),
    }


def test_a_nodes_server_takes_trials_on_its_socket_and_leaves_when_idle(tmp_path: Path) -> None:
    """Ray's warm node (trials._ray_warm.WarmNode, used here as a plain object): the first
    trial goes through the actor, which names the server's socket; later trials go to the socket
    directly; a socket nobody listens on is reported as nothing sent (the worker then asks the
    actor, safely); the server leaves by itself when idle and the next trial starts it again."""
    from trials._ray_warm import NotSent, WarmNode, spawn_direct
    from trials._warm import SERVER_SCRIPT

    script = tmp_path / "probe.py"
    script.write_text(SPARE_PROBE)
    node = WarmNode(["json"], SERVER_SCRIPT, idle_s=1.0)
    try:
        first = node.spawn(_request(script, tmp_path / "t1", "5"))
        assert isinstance(first.get("pid"), int) and isinstance(first.get("socket"), str)
        assert _exit_status(tmp_path / "t1") == "5\n"
        second = spawn_direct(first["socket"], _request(script, tmp_path / "t2", "6"))
        assert isinstance(second.get("pid"), int) and second["pid"] != first["pid"]
        assert _exit_status(tmp_path / "t2") == "6\n"
        assert node._proc is not None
        server = node._proc
        assert server.wait(timeout=60) == 0  # a second without a trial: it left by itself
        with pytest.raises(NotSent):
            spawn_direct(first["socket"], _request(script, tmp_path / "t3", "7"))
        assert not (tmp_path / "t3" / "trial.log").exists()  # nothing ran
        third = node.spawn(_request(script, tmp_path / "t4", "8"))  # the actor starts it again
        assert isinstance(third.get("pid"), int)
        assert _exit_status(tmp_path / "t4") == "8\n"
        assert node._proc is not None and node._proc is not server
    finally:
        node._stop()
