"""Local GPU and CPU allocation: discovery with simulated device lists, best-fit packing of
fractions, whole devices, GPU memory (against live free memory), release on end and on kill,
waiting instead of failing, and requests that can never fit as SpecErrors named by field."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

import automl
from automl import Client
from automl.core import ExperimentState, Resources, TrialState
from automl.errors import SpecError
from automl.spec import load_spec
from trials import (
    ExitStatus,
    GpuDevice,
    LocalProcessExecutor,
    Request,
    ResourceAllocator,
    TrialEvent,
    TrialRun,
    discover_gpus,
    parse_gpus,
    restrict_visible,
)
from trials._gpu import discover_gpus_live

GiB = 1 << 30


def devices(n: int, memory: int = 16 * GiB, free: list[int] | None = None) -> list[GpuDevice]:
    return [
        GpuDevice(i, f"GPU-sim-{i}", "sim", memory, free[i] if free else memory) for i in range(n)
    ]


def req(gpu: float, slots: int = 1, gpu_memory: int | None = None, cpu: float | None = None):
    return Request(slots=slots, gpu=gpu, gpu_memory=gpu_memory, cpu=cpu)


# -- discovery ------------------------------------------------------------------------------
def test_parse_simulated_device_lists() -> None:
    assert [d.index for d in parse_gpus("3")] == [0, 1, 2]
    two = parse_gpus("2x80Gi")
    assert [d.memory_total for d in two] == [80 * GiB, 80 * GiB]
    assert parse_gpus("0") == [] and parse_gpus("") == []
    listed = parse_gpus(
        json.dumps(
            [
                {"index": 4, "uuid": "GPU-aaa", "name": "A100", "memory_total": "40Gi"},
                {"index": 7, "uuid": "GPU-bbb", "memory_total": 8 * GiB, "memory_free": "2Gi"},
            ]
        )
    )
    assert listed[0] == GpuDevice(4, "GPU-aaa", "A100", 40 * GiB, 40 * GiB)
    assert (listed[1].index, listed[1].memory_free) == (7, 2 * GiB)
    with pytest.raises(ValueError, match="AUTOML_GPUS"):
        parse_gpus("lots")


def test_cuda_visible_devices_of_the_parent_restricts_discovery() -> None:
    env = {"AUTOML_GPUS": "4", "CUDA_VISIBLE_DEVICES": "3,1"}
    assert [d.index for d in discover_gpus(env)] == [3, 1]
    assert [d.index for d in discover_gpus({"AUTOML_GPUS": "4"})] == [0, 1, 2, 3]
    assert discover_gpus({"AUTOML_GPUS": "4", "CUDA_VISIBLE_DEVICES": ""}) == []
    assert discover_gpus({"AUTOML_GPUS": "4", "CUDA_VISIBLE_DEVICES": "-1"}) == []
    # UUIDs (or their prefixes) select too; like CUDA, the list stops at an unknown entry.
    sim = devices(4)
    assert [d.index for d in restrict_visible(sim, "GPU-sim-2,0")] == [2, 0]
    assert [d.index for d in restrict_visible(sim, "1,9,2")] == [1]
    with pytest.raises(SpecError) as e:
        discover_gpus({"AUTOML_GPUS": "four"})
    assert e.value.issues[0].path == "AUTOML_GPUS"


def _smi_uuids() -> list[str]:
    """The GPUs nvidia-smi lists, asked directly (empty where there is no driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=uuid", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip().startswith("GPU-")]


def _visible_gpus() -> int:
    import torch

    return max(len(_smi_uuids()), torch.cuda.device_count() if torch.cuda.is_available() else 0)


HAS_GPU = _visible_gpus() > 0
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU visible (nvidia-smi, torch.cuda)")


def test_discovery_finds_what_the_machine_has() -> None:
    # Without AUTOML_GPUS, discovery asks the machine (NVML, torch.cuda, nvidia-smi): it finds
    # exactly the GPUs nvidia-smi/torch report, none on a machine without any, and a GPU host
    # passes as well as a CPU-only one.
    found = discover_gpus({})
    if "CUDA_VISIBLE_DEVICES" in os.environ and HAS_GPU:
        # torch.cuda applies this process's CUDA_VISIBLE_DEVICES itself (NVML and nvidia-smi
        # do not): whichever backend answered, each device found is one nvidia-smi lists.
        assert found and {d.uuid for d in found} <= set(_smi_uuids() or [d.uuid for d in found])
        return
    assert len(found) == _visible_gpus()
    if _smi_uuids():
        assert sorted(d.uuid for d in found) == sorted(_smi_uuids())


@pytest.mark.gpu
@needs_gpu
def test_real_gpus_are_discovered_with_their_memory() -> None:
    found, free = discover_gpus_live({})
    assert found and free is not None
    assert len({d.index for d in found}) == len({d.uuid for d in found}) == len(found)
    for d in found:
        assert d.uuid.startswith("GPU-") and d.name
        assert 0 < d.memory_free <= d.memory_total
        assert d.memory_total >= 1 << 30  # every CUDA GPU has at least a GiB
    now = free()
    assert set(now) == {d.index for d in found}
    assert all(0 < now[d.index] <= d.memory_total for d in found)
    # nvidia-smi, asked directly, names the same devices (whichever backend answered)
    if _smi_uuids():
        assert sorted(d.uuid for d in found) == sorted(_smi_uuids())


@pytest.mark.gpu
@needs_gpu
def test_real_gpus_follow_cuda_visible_devices() -> None:
    found = discover_gpus({})
    last = found[-1]
    assert [d.uuid for d in discover_gpus({"CUDA_VISIBLE_DEVICES": str(last.index)})] == [
        last.uuid
    ]
    assert [d.uuid for d in discover_gpus({"CUDA_VISIBLE_DEVICES": last.uuid[:12]})] == [last.uuid]
    assert discover_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert discover_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []


@pytest.mark.gpu
@needs_gpu
def test_free_memory_reader_sees_an_allocation_on_a_real_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("this torch build has no CUDA: cannot allocate GPU memory to watch")
    found, free = discover_gpus_live({"CUDA_VISIBLE_DEVICES": str(discover_gpus({})[0].index)})
    assert free is not None
    before = free()[found[0].index]
    block = torch.empty(1 << 30, dtype=torch.uint8, device="cuda:0")  # 1 GiB
    torch.cuda.synchronize()
    try:
        during = free()[found[0].index]
    finally:
        del block
        torch.cuda.empty_cache()
    assert before - during >= (1 << 30) * 0.9  # another process may allocate meanwhile too


# -- packing --------------------------------------------------------------------------------
def test_fractions_share_one_device_before_using_the_next() -> None:
    a = ResourceAllocator(devices(2))
    got = [a.allocate(f"t{i}", req(0.25)) for i in range(4)]
    assert [g.devices for g in got if g] == [(0,), (0,), (0,), (0,)]
    fifth = a.allocate("t4", req(0.25))
    assert fifth is not None and fifth.devices == (1,)
    assert a.usage() == {0: 1.0, 1: 0.25}


def test_best_fit_fills_the_tightest_device_and_keeps_idle_ones_whole() -> None:
    a = ResourceAllocator(devices(4))
    assert a.allocate("half", req(0.5)).devices == (0,)  # type: ignore[union-attr]
    assert a.allocate("big", req(0.75)).devices == (1,)  # type: ignore[union-attr]
    # 0.25 fits on 0 (0.5 free) and 1 (0.25 free): best fit takes 1, leaving 0 for a half.
    assert a.allocate("quarter", req(0.25)).devices == (1,)  # type: ignore[union-attr]
    assert a.allocate("half2", req(0.5)).devices == (0,)  # type: ignore[union-attr]
    # Devices 2 and 3 were never broken into, so a 2-GPU trial still fits.
    assert a.allocate("two", req(2)).devices == (2, 3)  # type: ignore[union-attr]
    assert a.capacity(req(0.1)) == 0


def test_whole_gpu_requests_take_only_idle_devices() -> None:
    a = ResourceAllocator(devices(3))
    a.allocate("frac", req(0.1))
    one = a.allocate("one", req(1))
    assert one is not None and one.devices == (1,)
    assert a.allocate("two", req(2)) is None  # only device 2 is idle
    assert a.capacity(req(1)) == 1
    a.release("frac")
    two = a.allocate("two", req(2))
    assert two is not None and two.devices == (0, 2)
    assert two.cuda_visible_devices == "0,2" and two.uuids == ("GPU-sim-0", "GPU-sim-2")


def test_random_allocations_never_oversubscribe_a_device() -> None:
    rng = random.Random(7)
    a = ResourceAllocator(devices(4, memory=24 * GiB))
    live: dict[str, Request] = {}
    for step in range(2000):
        if live and rng.random() < 0.45:
            gone = rng.choice(sorted(live))
            a.release(gone)
            del live[gone]
            continue
        r = req(
            rng.choice([0.1, 0.2, 0.25, 1 / 3, 0.5, 0.7, 1, 2]),
            slots=rng.choice([1, 1, 2]),
            gpu_memory=rng.choice([None, 4 * GiB, 10 * GiB]),
        )
        if a.allocate(f"t{step}", r) is not None:
            live[f"t{step}"] = r
        share = dict.fromkeys(range(4), 0.0)
        memory = dict.fromkeys(range(4), 0)
        whole: dict[int, int] = {}
        for tid, alloc in a.held().items():
            rr = live[tid]
            assert len(set(alloc.devices)) == len(alloc.devices)  # distinct per process
            for i in alloc.devices:
                share[i] += 1.0 if rr.gpu >= 1 else rr.gpu
                memory[i] += rr.gpu_memory or 0
                if rr.gpu >= 1:
                    whole[i] = whole.get(i, 0) + 1
        assert all(v <= 1.0 + 1e-9 for v in share.values()), share
        assert all(v <= 24 * GiB for v in memory.values()), memory
        # A device given whole to a trial holds nothing else.
        assert all(share[i] == 1.0 and n == 1 for i, n in whole.items())
    assert live  # the loop placed trials


def test_gpu_memory_packs_by_free_memory_too() -> None:
    # Two 16 GiB devices, device 1 with only 9 GiB free (another process uses the rest).
    a = ResourceAllocator(devices(2, free=[16 * GiB, 9 * GiB]))
    r = req(0.25, gpu_memory=6 * GiB)
    # Device 0 holds 2 (12 of 16 GiB), device 1 one (6 of 9): 3, though shares allow 8.
    assert a.capacity(r) == 3
    placed = [a.allocate(f"t{i}", r) for i in range(4)]
    assert sorted(p.devices[0] for p in placed if p) == [0, 0, 1]
    assert placed[3] is None


def test_multi_gpu_and_per_process_devices() -> None:
    a = ResourceAllocator(devices(8))
    # 2 processes x 2 GPUs each: 4 whole devices, local rank i uses devices[2i:2i+2].
    r = Request.of(Resources(gpu=2, processes_per_worker=2))
    assert (r.slots, r.whole) == (2, 2)
    assert a.allocate("ddp", r).devices == (0, 1, 2, 3)  # type: ignore[union-attr]
    # 2 processes x 0.5 GPU: two different devices (NCCL allows one rank per device).
    half = a.allocate("halves", Request.of(Resources(gpu=0.5, processes_per_worker=2)))
    assert half is not None and len(set(half.devices)) == 2
    # workers x processes_per_worker all run here; cpu is per worker.
    w = Request.of(Resources(cpu=1.5, workers=2, processes_per_worker=3))
    assert (w.slots, w.cpu) == (6, 3.0)


def test_cpu_cores_limit_concurrency() -> None:
    a = ResourceAllocator([], cpus=4)
    r = req(0, cpu=1.5)
    assert a.capacity(r) == 2
    assert a.allocate("a", r) and a.allocate("b", r)
    assert a.allocate("c", r) is None
    a.release("a")
    assert a.allocate("c", r) is not None


def test_requests_that_can_never_fit_are_named() -> None:
    a = ResourceAllocator(devices(2, free=[16 * GiB, 4 * GiB]), cpus=8)
    msgs = {i.path: i.message for i in a.problems(req(3), "trial.resources")}
    assert "needs 3 devices" in msgs["trial.resources.gpu"]
    assert "2 GPUs visible" in msgs["trial.resources.gpu"]
    msgs = {i.path: i.message for i in a.problems(req(0.5, gpu_memory=20 * GiB), "x")}
    assert "20 GiB" in msgs["x.gpu_memory"] and "16 GiB free" in msgs["x.gpu_memory"]
    msgs = {i.path: i.message for i in a.problems(req(0, cpu=12), "x")}
    assert "8 cores" in msgs["x.cpu"]
    assert a.problems(req(1, slots=2, gpu_memory=4 * GiB), "x") == []


# -- live free memory ------------------------------------------------------------------------
class Free:
    """Free memory by device index, as a test sets it, and how often it was read."""

    def __init__(self, free: Mapping[int, int]) -> None:
        self.free = dict(free)
        self.reads = 0

    def __call__(self) -> dict[int, int]:
        self.reads += 1
        return dict(self.free)


def test_a_device_another_process_filled_is_skipped() -> None:
    free = Free({0: 16 * GiB, 1: 16 * GiB})
    a = ResourceAllocator(devices(2), free_memory=free, refresh=0)
    r = req(0.25, gpu_memory=6 * GiB)
    assert a.allocate("t0", r).devices == (0,)  # type: ignore[union-attr]
    # t0 uses its 6 GiB and another process takes 8 GiB more of device 0: 2 GiB are free.
    free.free[0] = 2 * GiB
    # Best fit would pick the shared device 0; it no longer has room, so device 1 it is.
    assert a.allocate("t1", r).devices == (1,)  # type: ignore[union-attr]
    assert a.memory_room() == {0: 2 * GiB, 1: 10 * GiB}
    assert a.capacity(r) == 1  # one more on device 1, none on device 0
    free.free[0] = 10 * GiB  # the other process is gone; t0 still uses its 6 GiB
    assert a.capacity(r) == 2


def test_a_trial_waits_until_memory_frees() -> None:
    free = Free({0: 1 * GiB})  # another process holds almost all of it
    a = ResourceAllocator(devices(1), free_memory=free, refresh=0)
    r = req(0.5, gpu_memory=6 * GiB)
    assert a.problems(r, "x") == []  # the device is big enough: wait, do not fail
    assert a.capacity(r) == 0 and a.allocate("t", r) is None
    free.free[0] = 16 * GiB
    assert a.capacity(r) == 2 and a.allocate("t", r) is not None
    # t ends, but its CUDA context is still tearing down: its memory is not free yet.
    free.free[0] = 8 * GiB
    a.release("t")
    assert a.capacity(r) == 1
    free.free[0] = 16 * GiB
    assert a.capacity(r) == 2


def test_promised_memory_counts_once_whether_used_or_not() -> None:
    free = Free({0: 16 * GiB})
    a = ResourceAllocator(devices(1), free_memory=free, refresh=0)
    r = req(0.25, gpu_memory=5 * GiB)
    assert a.allocate("a", r) is not None
    assert a.capacity(r) == 2  # a has not allocated yet: its 5 GiB are promised
    free.free[0] = 11 * GiB  # a now uses its 5 GiB
    assert a.capacity(r) == 2 and a.memory_room() == {0: 11 * GiB}  # not counted twice
    free.free[0] = 7 * GiB  # a uses 9 GiB, 4 more than promised: that is taken too
    assert a.capacity(r) == 1 and a.memory_room() == {0: 7 * GiB}
    a.release("a")
    free.free[0] = 12 * GiB  # another process holds 4 GiB when b is placed
    assert a.allocate("b", r) is not None
    # b has not allocated yet, so the device shows 12 GiB free; the 4 GiB seen when b was
    # placed still count: 16 - 5 (b) - 4 (other) = 7 GiB, one more trial, not two.
    assert a.memory_room() == {0: 7 * GiB} and a.capacity(r) == 1
    free.free[0] = 7 * GiB  # b allocated: same room
    assert a.memory_room() == {0: 7 * GiB}
    a.release("b")
    free.free[0] = 16 * GiB  # idle, the other process gone: all of it again
    assert a.memory_room() == {0: 16 * GiB} and a.capacity(r) == 3


def test_free_memory_is_read_only_for_gpu_memory_requests_and_cached() -> None:
    full = Free({0: 0, 1: 0})  # would block any memory request
    a = ResourceAllocator(devices(2), free_memory=full, refresh=3600)
    b = ResourceAllocator(devices(2))
    for i, g in enumerate([0.5, 0.25, 1, 0.5, 0.25]):  # no gpu_memory: exactly as without it
        assert a.allocate(f"t{i}", req(g)) == b.allocate(f"t{i}", req(g))
        assert a.capacity(req(0.25)) == b.capacity(req(0.25))
    assert full.reads == 0
    r = req(0.1, gpu_memory=GiB)
    assert [a.capacity(r), a.capacity(r), a.allocate("m", r)] == [0, 0, None]
    assert full.reads == 1  # one reading serves until it is `refresh` seconds old
    # A reader that fails keeps the last reading.
    calls = []

    def flaky() -> dict[int, int]:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("NVML: GPU is lost")
        return {0: 3 * GiB}

    c = ResourceAllocator(devices(1), free_memory=flaky, refresh=0)
    assert c.capacity(r) == 3 and c.capacity(r) == 3 and len(calls) == 2


def write_gpus(path: Path, free: list[int], total: int = 16 * GiB) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"memory_total": total, "memory_free": f} for f in free]))
    os.replace(tmp, path)  # readers never see half a file


def test_automl_gpus_file_is_reread_for_free_memory(tmp_path: Path) -> None:
    path = tmp_path / "gpus.json"
    write_gpus(path, [16 * GiB, 4 * GiB, 8 * GiB])
    found, read = discover_gpus_live({"AUTOML_GPUS": str(path), "CUDA_VISIBLE_DEVICES": "2,1"})
    assert [(d.index, d.memory_free) for d in found] == [(2, 8 * GiB), (1, 4 * GiB)]
    assert read is not None and read() == {2: 8 * GiB, 1: 4 * GiB}
    write_gpus(path, [16 * GiB, 16 * GiB, GiB])
    assert read() == {2: GiB, 1: 16 * GiB}
    assert discover_gpus({"AUTOML_GPUS": str(path)})[2].memory_free == GiB
    assert discover_gpus_live({"AUTOML_GPUS": "2x8Gi"})[1] is None  # an inline list never changes
    with pytest.raises(SpecError) as e:
        discover_gpus({"AUTOML_GPUS": str(tmp_path / "missing.json")})
    assert e.value.issues[0].path == "AUTOML_GPUS" and "missing.json" in e.value.issues[0].message


# -- through the executor and the controller -------------------------------------------------
TRIAL = """
import json, os, sys, time
start = time.time()
time.sleep(float(sys.argv[2]))
out = os.path.join(os.environ["OUT_DIR"], os.environ["AUTOML_TRIAL_NAME"] + ".json")
with open(out, "w") as f:
    json.dump({"cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start,
               "end": time.time(), "x": float(sys.argv[1])}, f)
if float(sys.argv[1]) < 0:
    sys.exit(3)
print("loss=%s" % sys.argv[1])
"""


def write_exp(
    tmp_path: Path, resources: dict[str, Any], *, trials: int, parallel: int, **extra: Any
) -> Path:
    (tmp_path / "trial.py").write_text(TRIAL)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    doc: dict[str, Any] = {
        "name": "gpus",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "seed": 1,
        "parameters": {"x": {"type": "double", "min": 0, "max": 1}},
        "budget": {"max_trials": trials, "parallel": parallel, "max_failed": trials},
        "trial": {
            "command": ["python", "trial.py", "${x}", "0.6"],
            "env": {"OUT_DIR": str(out)},
            "resources": resources,
        },
        **extra,
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def seen(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*.json"))]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, d in edges:  # an end sorts before a start at the same instant
        now += d
        best = max(best, now)
    return best


def test_trials_get_their_devices_and_wait_for_free_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2 simulated GPUs, 3 visible to this process; each trial takes a whole one; 4 may run
    # at once by the budget, but only 2 fit: the others wait, and none fails.
    monkeypatch.setenv("AUTOML_GPUS", "4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    f = write_exp(tmp_path, {"gpu": 1}, trials=5, parallel=4)
    client = Client(f"sqlite:///{tmp_path / 's.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    trials = client.trials("gpus")
    assert [t.state for t in trials] == [TrialState.SUCCEEDED] * 5
    records = seen(tmp_path)
    assert len(records) == 5
    assert {r["cvd"] for r in records} == {"1", "3"}  # the parent's restriction holds
    for dev in ("1", "3"):  # a device is never held by two trials at once
        assert max_overlap([(r["start"], r["end"]) for r in records if r["cvd"] == dev]) == 1
    assert max_overlap([(r["start"], r["end"]) for r in records]) <= 2


def test_automl_run_packs_fractional_trials_onto_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from automl.cli import app

    monkeypatch.setenv("AUTOML_GPUS", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    f = write_exp(tmp_path, {"gpu": 0.5}, trials=4, parallel=4)
    store = f"sqlite:///{tmp_path / 's.db'}"
    runs = str(tmp_path / "runs")
    r = CliRunner().invoke(
        app, ["run", str(f), "--no-progress", "--store", store, "--runs-dir", runs]
    )
    assert r.exit_code == 0, r.stdout + r.stderr
    records = seen(tmp_path)
    assert len(records) == 4
    for dev in {r["cvd"] for r in records}:
        assert dev in ("0", "1")
        assert max_overlap([(r["start"], r["end"]) for r in records if r["cvd"] == dev]) <= 2
    # A request that can never fit is named on the command line, and nothing runs.
    doc = yaml.safe_load(f.read_text())
    doc.update(name="too-many")
    doc["trial"]["resources"] = {"gpu": 4}
    f.write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(
        app, ["run", str(f), "--no-progress", "--store", store, "--runs-dir", runs]
    )
    assert r.exit_code == 2
    assert "trial.resources.gpu" in r.stderr and "2 GPUs visible" in r.stderr
    assert "too-many" not in {e.name for e in Client(store).list()}  # checked before storing


def test_cpu_setting_bounds_running_trials(tmp_path: Path) -> None:
    f = write_exp(
        tmp_path,
        {"cpu": 1},
        trials=4,
        parallel=4,
        executor={"kind": "local", "settings": {"cpus": 2}},
    )
    client = Client(f"sqlite:///{tmp_path / 's.db'}", runs_dir=tmp_path / "runs")
    client.run(f)
    records = seen(tmp_path)
    assert len(records) == 4
    # Without a gpu request the trial's CUDA_VISIBLE_DEVICES is left as it was.
    assert {r["cvd"] for r in records} == {os.environ.get("CUDA_VISIBLE_DEVICES")}
    assert max_overlap([(r["start"], r["end"]) for r in records]) <= 2


def wait_for(ex: LocalProcessExecutor, pred: Any, timeout: float = 20.0) -> list[TrialEvent]:
    got: list[TrialEvent] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got.extend(ex.poll(0.1))
        if pred(got):
            return got
    raise AssertionError(f"timed out; events: {got}")


def sleeper_spec(tmp_path: Path, gpu: float) -> Any:
    script = tmp_path / "sleeper.py"
    script.write_text(
        "import os, sys, time\n"
        "print('cvd=' + os.environ['CUDA_VISIBLE_DEVICES'], flush=True)\n"
        "sys.exit(int(sys.argv[1])) if sys.argv[1] != 'sleep' else time.sleep(60)\n"
    )
    doc = {
        "name": "exec",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "parameters": {"mode": ["sleep", "0", "4"]},
        "trial": {"command": ["python", str(script), "${mode}"], "resources": {"gpu": gpu}},
    }
    f = tmp_path / "exec.yaml"
    f.write_text(yaml.safe_dump(doc))
    return load_spec(f)


def cvd(tmp_path: Path, trial_id: str) -> str:
    log = (tmp_path / "runs" / "exec" / trial_id / "trial.log").read_text()
    return next(line for line in log.splitlines() if line.startswith("cvd="))[4:]


def test_devices_free_when_a_trial_ends_crashes_or_is_killed(tmp_path: Path) -> None:
    spec = sleeper_spec(tmp_path, gpu=1)
    ex = LocalProcessExecutor(
        spec, tmp_path / "runs", gpus=[GpuDevice(5, "GPU-x", "sim", GiB, GiB)]
    )
    try:
        assert ex.capacity() == 1
        ex.submit(TrialRun("a", "exec", 0, {"mode": "sleep"}))
        assert ex.capacity() == 0
        ex.submit(TrialRun("b", "exec", 1, {"mode": "4"}))  # no room: waits, does not fail
        ex.submit(TrialRun("c", "exec", 2, {"mode": "0"}))
        ex.submit(TrialRun("d", "exec", 3, {"mode": "0"}))
        got = wait_for(ex, lambda ev: any(e.started for e in ev))
        assert [e.trial_id for e in got if e.started] == ["a"]
        log = tmp_path / "runs" / "exec" / "a" / "trial.log"
        end = time.monotonic() + 20
        while "cvd=" not in log.read_text() and time.monotonic() < end:
            time.sleep(0.05)
        ex.cancel("d")  # a waiting trial is cancelled without ever starting
        ex.cancel("a")  # killed: its device goes to the next waiting trial
        got += wait_for(ex, lambda ev: sum(1 for e in ev if e.exit) == 4)
        exits = {e.trial_id: e.exit.status for e in got if e.exit}
        assert exits == {
            "a": ExitStatus.CANCELLED,
            "b": ExitStatus.FAILED,  # crashed (exit 4), and freed the device for c
            "c": ExitStatus.COMPLETED,
            "d": ExitStatus.CANCELLED,
        }
        assert [e.trial_id for e in got if e.started] == ["a", "b", "c"]
        assert {cvd(tmp_path, t) for t in "abc"} == {"5"}
        assert ex.capacity() == 1 and not (tmp_path / "runs" / "exec" / "d" / "trial.log").exists()
    finally:
        ex.close()


def test_experiment_skips_a_filled_device_and_waits_for_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process holds both 16 GiB devices when the experiment starts: trials that need
    # 6 GiB wait (no SpecError, no OOM) until device 1 frees; device 0 stays full and is skipped.
    gpus = tmp_path / "gpus.json"
    write_gpus(gpus, [GiB, GiB])
    monkeypatch.setenv("AUTOML_GPUS", str(gpus))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    f = write_exp(tmp_path, {"gpu": 0.25, "gpu_memory": "6Gi"}, trials=3, parallel=3)
    doc = yaml.safe_load(f.read_text())
    doc["budget"]["timeout"] = 120  # if trials never started, fail rather than wait forever
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    freed: list[float] = []

    def free_device_1() -> None:
        time.sleep(1.0)
        freed.append(time.time())
        write_gpus(gpus, [GiB, 16 * GiB])

    other = threading.Thread(target=free_device_1)
    other.start()
    client = Client(f"sqlite:///{tmp_path / 's.db'}", runs_dir=tmp_path / "runs")
    try:
        client.run(f)
    finally:
        other.join()
    assert [t.state for t in client.trials("gpus")] == [TrialState.SUCCEEDED] * 3
    records = seen(tmp_path)
    assert {r["cvd"] for r in records} == {"1"}
    assert all(r["start"] >= freed[0] for r in records)  # none started before the memory freed
    # Shares allow 4 per device; 16 GiB allow 2 of 6 GiB.
    assert max_overlap([(r["start"], r["end"]) for r in records]) <= 2


USER = """
import fcntl, json, os, signal, sys, time
path, need, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dev = int(os.environ["CUDA_VISIBLE_DEVICES"])

def change(delta):  # what cudaMalloc and freeing do to the device's free memory
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(path) as f:
            items = json.load(f)
        if items[dev]["memory_free"] + delta < 0:
            print("CUDA out of memory", flush=True)
            sys.exit(1)
        items[dev]["memory_free"] += delta
        with open(path + ".tmp", "w") as f:
            json.dump(items, f)
        os.replace(path + ".tmp", path)

def stop(*_):
    change(need)
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
change(-need)
print("allocated", flush=True)
if mode == "hold":
    while True:
        time.sleep(0.05)
time.sleep(0.2)
change(need)
"""


def test_running_trials_memory_is_counted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trials take their memory from the simulated device (and OOM if it is not there). Once a
    # trial uses its 6 GiB the device shows 10 GiB free and 6 GiB promised: one more fits, not
    # zero; with two using 12 GiB, a third waits until one ends and its memory is free.
    gpus = tmp_path / "gpus.json"
    write_gpus(gpus, [16 * GiB])
    monkeypatch.setenv("AUTOML_GPUS", str(gpus))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    script = tmp_path / "user.py"
    script.write_text(USER)
    doc = {
        "name": "exec",
        "objective": {"metric": "loss", "direction": "minimize"},
        "algorithm": "random",
        "parameters": {"mode": ["hold", "run"]},
        "trial": {
            "command": [sys.executable, str(script), str(gpus), str(6 * GiB), "${mode}"],
            "resources": {"gpu": 0.25, "gpu_memory": "6Gi"},
        },
    }
    (tmp_path / "exec.yaml").write_text(yaml.safe_dump(doc))
    spec = load_spec(tmp_path / "exec.yaml")
    found = discover_gpus_live()[1]
    assert found is not None
    reads = [0]

    def counted() -> Mapping[int, int]:
        reads[0] += 1
        return found()

    def fresh() -> int:
        # Ask again until the allocator has taken a new reading of the device.
        n = reads[0]
        end = time.monotonic() + 20
        while reads[0] == n and time.monotonic() < end:
            ex.capacity()
            time.sleep(0.05)
        return ex.capacity() or 0

    def allocated(free: int) -> None:
        end = time.monotonic() + 20
        while json.loads(gpus.read_text())[0]["memory_free"] != free:
            assert time.monotonic() < end, gpus.read_text()
            time.sleep(0.05)

    ex = LocalProcessExecutor(spec, tmp_path / "runs", free_memory=counted)
    try:
        assert ex.capacity() == 2
        ex.submit(TrialRun("a", "exec", 0, {"mode": "hold"}))
        allocated(10 * GiB)
        assert fresh() == 1  # a's 6 GiB count once: used, and promised
        ex.submit(TrialRun("b", "exec", 1, {"mode": "hold"}))
        allocated(4 * GiB)
        assert fresh() == 0
        ex.submit(TrialRun("c", "exec", 2, {"mode": "run"}))  # waits for room
        ex.cancel("a")  # frees its memory as it exits; then c fits
        got = wait_for(ex, lambda ev: any(e.exit and e.trial_id == "c" for e in ev))
        exits = {e.trial_id: e.exit.status for e in got if e.exit}
        assert exits == {"a": ExitStatus.CANCELLED, "c": ExitStatus.COMPLETED}  # c did not OOM
        assert "allocated" in (tmp_path / "runs" / "exec" / "c" / "trial.log").read_text()
    finally:
        ex.close()


# -- bad input -------------------------------------------------------------------------------
def spec_error(tmp_path: Path, resources: dict[str, Any], command: list[str] | None = None) -> Any:
    f = write_exp(tmp_path, resources, trials=1, parallel=1)
    if command:
        doc = yaml.safe_load(f.read_text())
        doc["trial"]["command"] = command
        f.write_text(yaml.safe_dump(doc))
    db = tmp_path / f"s{len(list(tmp_path.glob('s*.db')))}.db"
    client = Client(f"sqlite:///{db}", runs_dir=tmp_path / "runs")
    with pytest.raises(SpecError) as e:
        client.run(f)
    assert list((tmp_path / "out").glob("*.json")) == []  # no trial ran
    assert all(client.trials(x.name) == [] for x in client.list())
    return {i.path: i.message for i in e.value.issues}


def test_impossible_requests_fail_before_any_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOML_GPUS", json.dumps([{"memory_total": "16Gi"}] * 2))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    msgs = spec_error(tmp_path, {"gpu": 1.5})
    assert "whole number" in msgs["trial.resources.gpu"] and "1.5" in msgs["trial.resources.gpu"]
    msgs = spec_error(tmp_path, {"gpu": 4})
    assert "needs 4 devices" in msgs["trial.resources.gpu"]
    assert "2 GPUs visible" in msgs["trial.resources.gpu"]
    msgs = spec_error(tmp_path, {"gpu": 0.5, "gpu_memory": "40Gi"})
    assert "40 GiB" in msgs["trial.resources.gpu_memory"]
    msgs = spec_error(tmp_path, {"processes_per_worker": 2}, command=["bash", "-c", "echo hi"])
    assert "Python program" in msgs["trial.resources.processes_per_worker"]
    assert "bash" in msgs["trial.resources.processes_per_worker"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    msgs = spec_error(tmp_path, {"gpu": 0.25})
    assert "0 GPUs visible" in msgs["trial.resources.gpu"]


def test_tune_takes_resources_and_executor() -> None:
    def f(x: float) -> float:
        return x

    space = {"x": automl.double(0, 1)}
    with pytest.raises(SpecError) as e:
        automl.tune(f, space, max_trials=1, resources_per_trial={"gpu": 1.5, "cpus": 2})
    paths = {i.path for i in e.value.issues}
    assert "resources_per_trial.cpus" in paths  # unknown field
    with pytest.raises(SpecError) as e:
        automl.tune(f, space, max_trials=1, resources_per_trial={"gpu": 1.5})
    assert e.value.issues[0].path == "resources_per_trial.gpu"
    with pytest.raises(SpecError) as e:
        automl.tune(f, space, max_trials=1, executor="slurm")
    assert e.value.issues[0].path == "executor" and "'ray'" in e.value.issues[0].message
    with pytest.raises(SpecError) as e:  # threads cannot hold a GPU each
        automl.tune(f, space, max_trials=1, resources_per_trial=Resources(gpu=1))
    assert e.value.issues[0].path == "resources_per_trial.gpu"


def test_tune_stores_resources_and_executor(tmp_path: Path) -> None:
    def f(x: float) -> float:
        return x

    r = automl.tune(
        f,
        {"x": automl.double(0, 1)},
        max_trials=2,
        store=f"sqlite:///{tmp_path / 's.db'}",
        resources_per_trial={"cpu": 2, "memory": 1 << 30},
        executor={"kind": "local"},
    )
    assert r.experiment.state is ExperimentState.SUCCEEDED
    res = r.experiment.spec.trial_template.resources
    assert (res.cpu, res.memory_bytes) == (2, 1 << 30)
