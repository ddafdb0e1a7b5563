"""Local GPUs and CPU cores: what this machine has, and which running trial holds which.

Discovery (:func:`discover_gpus`) asks, in order: ``AUTOML_GPUS`` (a simulated device list, for
tests and for pinning), NVML through ``pynvml``, ``torch.cuda``, then ``nvidia-smi``; an existing
``CUDA_VISIBLE_DEVICES`` of this process restricts the result, as CUDA would.

The :class:`ResourceAllocator` hands each trial its devices and CPU share, never more than a
device or the machine has. Fractions of a device (``gpu: 0.25``) are packed best-fit: onto the
device whose free share (then free memory) is the smallest that still fits, so partly used
devices fill up before an idle one is broken into, and whole-GPU requests still find whole free
devices. A request that does not fit now simply waits (the executor reports no capacity); one
that can never fit on this machine is a :class:`~automl.errors.SpecError` up front.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from automl.core import Resources, parse_quantity
from automl.errors import SpecError, SpecIssue

__all__ = [
    "GPUS_ENV",
    "Allocation",
    "GpuDevice",
    "Request",
    "ResourceAllocator",
    "discover_gpus",
    "parse_gpus",
    "restrict_visible",
]

#: Simulated or pinned device list: JSON (a list of GpuDevice fields; memory as bytes or a
#: quantity such as ``"16Gi"``), or the shorthand ``N`` / ``NxMEM`` (``4x16Gi``); ``0`` or an
#: empty value for none.
GPUS_ENV = "AUTOML_GPUS"
_UNITS = 10_000  # a device in integer units: 0.1 * 10 must fill it exactly, not overflow it
_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One GPU of this machine.

    Attributes:
        index: Its index as NVML and ``nvidia-smi`` number it (PCI bus order).
        uuid: Its UUID (``GPU-...``).
        name: The product name.
        memory_total: Memory in bytes.
        memory_free: Memory in bytes not in use when automl looked.
    """

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_free: int


def _bytes(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be bytes or a quantity such as '16Gi'; got {value!r}")
    try:
        return parse_quantity(value, what)
    except SpecError as exc:
        raise ValueError(f"{what}: {exc.issues[0].message}") from None


def parse_gpus(raw: str) -> list[GpuDevice]:
    """Devices from an ``AUTOML_GPUS`` value.

    Args:
        raw: ``"2"`` (two 16 GiB devices), ``"4x80Gi"``, ``"0"`` or ``""`` (none), or a JSON list
            of objects with ``index``, ``uuid``, ``name``, ``memory_total``, ``memory_free``
            (all optional but memory; indexes default to positions).

    Raises:
        ValueError: The value is neither form.
    """
    raw = raw.strip()
    if raw in ("", "0", "none"):
        return []
    if raw.startswith("["):
        items = json.loads(raw)
        if not isinstance(items, list):
            raise ValueError(f"{GPUS_ENV} must be a JSON list; got {raw!r}")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ValueError(f"{GPUS_ENV}[{i}] must be an object; got {item!r}")
            total = _bytes(item.get("memory_total", 16 << 30), f"{GPUS_ENV}[{i}].memory_total")
            free = _bytes(item.get("memory_free", total), f"{GPUS_ENV}[{i}].memory_free")
            index = int(item.get("index", i))
            out.append(
                GpuDevice(
                    index,
                    str(item.get("uuid", f"GPU-sim-{index}")),
                    str(item.get("name", "simulated GPU")),
                    total,
                    min(free, total),
                )
            )
        return out
    count, _, mem = raw.partition("x")
    if not count.strip().isdigit():
        raise ValueError(f"{GPUS_ENV} must be N, NxMEM (4x16Gi) or a JSON list; got {raw!r}")
    total = _bytes(mem.strip(), f"{GPUS_ENV} memory") if mem else 16 << 30
    return [
        GpuDevice(i, f"GPU-sim-{i}", "simulated GPU", total, total)
        for i in range(int(count.strip()))
    ]


def _nvml() -> list[GpuDevice] | None:
    try:
        import pynvml  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: NVML raises its own error types
        return None
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            uuid, name = pynvml.nvmlDeviceGetUUID(h), pynvml.nvmlDeviceGetName(h)
            out.append(
                GpuDevice(
                    i,
                    uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                    name.decode() if isinstance(name, bytes) else str(name),
                    int(mem.total),
                    int(mem.free),
                )
            )
        return out
    finally:
        pynvml.nvmlShutdown()


def _torch(visible: str | None) -> list[GpuDevice] | None:
    """Devices torch.cuda sees.

    torch applies ``CUDA_VISIBLE_DEVICES`` itself, so indexes are mapped back to its entries.
    """
    try:
        import torch
    except ImportError:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        entries = [e.strip() for e in visible.split(",")] if visible else []
        out = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            index = int(entries[i]) if i < len(entries) and entries[i].isdigit() else i
            uuid = str(getattr(props, "uuid", f"cuda-{index}"))
            uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
            out.append(GpuDevice(index, uuid, str(props.name), int(total), int(free)))
        return out
    except RuntimeError:  # a driver that torch cannot use
        return None


def _nvidia_smi() -> list[GpuDevice] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [
                exe,
                "--query-gpu=index,uuid,name,memory.total,memory.used",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    devices = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5 or not parts[0].isdigit():
            continue
        try:
            total, used = int(float(parts[3])) * _MIB, int(float(parts[4])) * _MIB
        except ValueError:
            continue
        devices.append(GpuDevice(int(parts[0]), parts[1], parts[2], total, max(0, total - used)))
    return devices


def restrict_visible(devices: Sequence[GpuDevice], visible: str | None) -> list[GpuDevice]:
    """The devices a ``CUDA_VISIBLE_DEVICES`` value lets through, in its order.

    Entries are indexes or (prefixes of) UUIDs; as in CUDA, the list ends at the first entry that
    names no device, and an empty value (or ``-1``) hides every device. None: no restriction.
    """
    if visible is None:
        return list(devices)
    out: list[GpuDevice] = []
    for entry in (e.strip() for e in visible.split(",")):
        if entry.isdigit():
            found = [d for d in devices if d.index == int(entry)]
        else:
            found = [d for d in devices if entry and d.uuid.startswith(entry)]
        if len(found) != 1 or found[0] in out:
            break
        out.append(found[0])
    return out


def discover_gpus(env: Mapping[str, str] | None = None) -> list[GpuDevice]:
    """This machine's GPUs that this process may use.

    Args:
        env: The environment to read ``AUTOML_GPUS`` and ``CUDA_VISIBLE_DEVICES`` from
            (default: ``os.environ``).

    Raises:
        SpecError: ``AUTOML_GPUS`` is set but malformed.
    """
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    raw = env.get(GPUS_ENV)
    if raw is not None:
        try:
            return restrict_visible(parse_gpus(raw), visible)
        except (ValueError, json.JSONDecodeError) as exc:
            raise SpecError(f"{exc}", path=GPUS_ENV) from None
    found = _nvml()
    if found is not None:
        return restrict_visible(found, visible)
    found = _torch(visible)
    if found is not None:
        return found  # already restricted by CUDA itself
    return restrict_visible(_nvidia_smi() or [], visible)


@dataclass(frozen=True, slots=True)
class Request:
    """What one trial asks of this machine.

    Attributes:
        slots: Processes that each need their own device(s) (``workers * processes_per_worker``).
        gpu: GPUs per process: a fraction shares a device, a whole number takes whole devices.
        gpu_memory: Device memory in bytes each process needs on its device(s).
        cpu: CPU cores the trial holds (``cpu * workers``), None for no reservation.
    """

    slots: int = 1
    gpu: float = 0.0
    gpu_memory: int | None = None
    cpu: float | None = None

    @classmethod
    def of(cls, r: Resources) -> Request:
        """The request of a trial template's resources (validated)."""
        return cls(
            max(1, r.workers * r.processes_per_worker),
            r.gpu,
            r.gpu_memory_bytes,
            None if r.cpu is None else r.cpu * r.workers,
        )

    @property
    def whole(self) -> int:
        """Whole devices per process; 0 for a fraction."""
        return int(self.gpu) if self.gpu >= 1 else 0

    @property
    def units(self) -> int:
        """A fractional request in device units."""
        return round(self.gpu * _UNITS)


@dataclass(frozen=True, slots=True)
class Allocation:
    """The devices and cores one trial holds.

    Attributes:
        devices: Device indexes, in the order the trial's processes use them (local rank ``i``
            gets ``devices[i * per_process : (i + 1) * per_process]``).
        uuids: Their UUIDs, in the same order.
        cpu: Cores held, or None.
    """

    devices: tuple[int, ...] = ()
    uuids: tuple[str, ...] = ()
    cpu: float | None = None

    @property
    def cuda_visible_devices(self) -> str:
        """The ``CUDA_VISIBLE_DEVICES`` value of the trial."""
        return ",".join(str(i) for i in self.devices)


class ResourceAllocator:
    """Hands devices and CPU cores to trials; thread-safe.

    Args:
        devices: The GPUs trials may use (see :func:`discover_gpus`).
        cpus: Cores trials may hold together (default: ``os.cpu_count()``).
    """

    def __init__(self, devices: Sequence[GpuDevice], cpus: float | None = None) -> None:
        self.devices = tuple(devices)
        self.cpus = float(cpus if cpus is not None else os.cpu_count() or 1)
        self._by_index = {d.index: d for d in self.devices}
        self._units = dict.fromkeys(self._by_index, 0)  # units in use per device
        self._memory = dict.fromkeys(self._by_index, 0)  # bytes reserved per device
        self._cpu = 0.0
        self._held: dict[str, tuple[Request, Allocation]] = {}
        self._lock = threading.Lock()

    # -- checks -----------------------------------------------------------------------------
    def problems(self, request: Request, field: str) -> list[SpecIssue]:
        """Why ``request`` can never fit here, even on an idle machine.

        Args:
            request: What one trial asks.
            field: The path of the resources in the user's spec (``trial.resources``).
        """
        out: list[SpecIssue] = []
        n = len(self.devices)
        have = f"this machine has {n} GPU{'s' if n != 1 else ''} visible" + (
            f" ({', '.join(str(d.index) for d in self.devices)})" if n else ""
        )
        if request.gpu > 0:
            need = request.slots * request.whole if request.whole else request.slots
            if need > n:
                each = f"{request.gpu:g} per process x {request.slots} processes"
                out.append(
                    SpecIssue(
                        f"{field}.gpu",
                        f"needs {need} device{'s' if need != 1 else ''} "
                        f"({each if request.slots > 1 else f'gpu {request.gpu:g}'}); {have}",
                    )
                )
            elif request.gpu_memory is not None:
                fit = [d for d in self.devices if d.memory_free >= request.gpu_memory]
                if len(fit) < need:
                    big = max(self.devices, key=lambda d: d.memory_free)
                    out.append(
                        SpecIssue(
                            f"{field}.gpu_memory",
                            f"needs {request.gpu_memory / (1 << 30):.3g} GiB on "
                            f"{need} device{'s' if need != 1 else ''}, but "
                            f"{len(fit)} {'has' if len(fit) == 1 else 'have'} that much free "
                            f"(largest: GPU {big.index} {big.name}, "
                            f"{big.memory_free / (1 << 30):.3g} GiB free of "
                            f"{big.memory_total / (1 << 30):.3g} GiB)",
                        )
                    )
        if request.cpu is not None and request.cpu > self.cpus + 1e-9:
            out.append(
                SpecIssue(
                    f"{field}.cpu",
                    f"needs {request.cpu:g} cores per trial; trials may hold {self.cpus:g} "
                    "cores on this machine",
                )
            )
        return out

    # -- placement --------------------------------------------------------------------------
    def _place(
        self, r: Request, units: Mapping[int, int], memory: Mapping[int, int], cpu: float
    ) -> tuple[int, ...] | None:
        if r.cpu is not None and cpu + r.cpu > self.cpus + 1e-9:
            return None
        if r.gpu <= 0:
            return ()
        need_mem = r.gpu_memory or 0

        def mem_left(d: GpuDevice) -> int:
            return d.memory_free - memory[d.index]

        if r.whole:
            idle = [d for d in self.devices if units[d.index] == 0 and mem_left(d) >= need_mem]
            # Best fit by memory when it matters: keep the roomiest devices for bigger asks.
            idle.sort(key=lambda d: (mem_left(d) if need_mem else 0, d.index))
            want = r.slots * r.whole
            return tuple(d.index for d in idle[:want]) if len(idle) >= want else None
        fits = [
            d
            for d in self.devices
            if _UNITS - units[d.index] >= r.units and mem_left(d) >= need_mem
        ]
        # Best fit: the tightest device first (least share left after placing, then memory).
        fits.sort(key=lambda d: (_UNITS - units[d.index] - r.units, mem_left(d), d.index))
        return tuple(d.index for d in fits[: r.slots]) if len(fits) >= r.slots else None

    def _take(
        self, r: Request, devices: tuple[int, ...], units: dict[int, int], memory: dict[int, int]
    ) -> None:
        for i in devices:
            units[i] += _UNITS if r.whole else r.units
            memory[i] += r.gpu_memory or 0

    def allocate(self, trial_id: str, request: Request) -> Allocation | None:
        """Reserve what ``request`` needs for ``trial_id``; None when it does not fit now."""
        with self._lock:
            if trial_id in self._held:
                return self._held[trial_id][1]
            devices = self._place(request, self._units, self._memory, self._cpu)
            if devices is None:
                return None
            self._take(request, devices, self._units, self._memory)
            if request.cpu is not None:
                self._cpu += request.cpu
            alloc = Allocation(
                devices, tuple(self._by_index[i].uuid for i in devices), request.cpu
            )
            self._held[trial_id] = (request, alloc)
            return alloc

    def release(self, trial_id: str) -> None:
        """Give back what ``trial_id`` holds (nothing if it holds nothing)."""
        with self._lock:
            held = self._held.pop(trial_id, None)
            if held is None:
                return
            r, alloc = held
            for i in alloc.devices:
                self._units[i] -= _UNITS if r.whole else r.units
                self._memory[i] -= r.gpu_memory or 0
            if r.cpu is not None:
                self._cpu = max(0.0, self._cpu - r.cpu)

    def capacity(self, request: Request, limit: int = 1024) -> int:
        """How many more trials of ``request`` fit now (at most ``limit``)."""
        with self._lock:
            units, memory, cpu = dict(self._units), dict(self._memory), self._cpu
            n = 0
            while n < limit:
                devices = self._place(request, units, memory, cpu)
                if devices is None:
                    break
                self._take(request, devices, units, memory)
                cpu += request.cpu or 0.0
                n += 1
            return n

    def usage(self) -> dict[int, float]:
        """The share of each device in use (1.0 = full)."""
        with self._lock:
            return {i: u / _UNITS for i, u in self._units.items()}

    def held(self) -> dict[str, Allocation]:
        """What each trial holds now."""
        with self._lock:
            return {t: a for t, (_, a) in self._held.items()}
