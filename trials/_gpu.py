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

GPU memory (``gpu_memory``) is packed against the devices' *live* free memory, re-read through
the backend that found them (:func:`discover_gpus_live`) at most every ``refresh`` seconds, and
only while some request asks for memory. Per device the rule is::

    promised = gpu_memory of the trials holding the device
    external = max(total - free_now - promised, the external seen when each holder was placed)
    room     = total - promised - external

Running trials are taken to use up to what they promised, so any use beyond that is someone
else's (another job, a trial overrunning its promise, a finished trial's CUDA context still
tearing down) and is kept out of ``room``; a trial that has allocated its memory is therefore not
counted twice. A trial that has not allocated yet leaves memory free that another process may
take: what was seen as external when a trial was placed stays counted until that trial ends, so
the not-yet-allocated promise never hides memory others held then. (Memory another process takes
between a trial's placement and its allocation cannot be told apart from the trial's: there is
no per-process accounting.) With a device list that never
changes (``free_now`` fixed), the rule is the snapshot rule ``room = memory_free - promised``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from automl.core import Resources, parse_quantity
from automl.errors import SpecError, SpecIssue

__all__ = [
    "GPUS_ENV",
    "Allocation",
    "FreeMemory",
    "GpuDevice",
    "Request",
    "ResourceAllocator",
    "discover_gpus",
    "discover_gpus_live",
    "parse_gpus",
    "restrict_visible",
]

#: Simulated or pinned device list: JSON (a list of GpuDevice fields; memory as bytes or a
#: quantity such as ``"16Gi"``), the shorthand ``N`` / ``NxMEM`` (``4x16Gi``), or the path of a
#: file holding either (re-read for live free memory, so a test can change it); ``0`` or an
#: empty value for none.
GPUS_ENV = "AUTOML_GPUS"

#: Reads the devices' free memory now: bytes by device index (a device left out keeps its last
#: reading). May raise; the allocator then keeps the last reading.
FreeMemory = Callable[[], Mapping[int, int]]
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
        raw: ``"2"`` (two 16 GiB devices), ``"4x80Gi"``, ``"0"`` or ``""`` (none), a JSON list
            of objects with ``index``, ``uuid``, ``name``, ``memory_total``, ``memory_free``
            (all optional but memory; indexes default to positions), or the path of a file
            holding one of these.

    Raises:
        ValueError: The value is none of these forms, or names a file that cannot be read.
    """
    raw = raw.strip()
    if _is_path(raw):
        try:
            with open(os.path.expanduser(raw), encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ValueError(
                f"{GPUS_ENV} names the file {raw!r}, which cannot be read: {exc.strerror or exc}"
            ) from None
        if _is_path(text.strip()):
            raise ValueError(f"{GPUS_ENV} file {raw!r} must hold a device list, not a path")
        return parse_gpus(text)
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


def _is_path(raw: str) -> bool:
    return raw.startswith(("/", "./", "../", "~")) or raw.endswith(".json")


def _file_free(raw: str, visible: str | None) -> FreeMemory:
    path = os.path.expanduser(raw)

    def read() -> Mapping[int, int]:
        return {d.index: d.memory_free for d in restrict_visible(parse_gpus(path), visible)}

    return read


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


def _nvml_free() -> Mapping[int, int]:
    import pynvml  # type: ignore[import-not-found, unused-ignore]

    pynvml.nvmlInit()
    try:
        return {
            i: int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).free)
            for i in range(pynvml.nvmlDeviceGetCount())
        }
    finally:
        pynvml.nvmlShutdown()


def _torch_indexes(visible: str | None, count: int) -> list[int]:
    """Device indexes of torch's ordinals 0..count-1 (torch numbers the visible ones)."""
    entries = [e.strip() for e in visible.split(",")] if visible else []
    return [
        int(entries[i]) if i < len(entries) and entries[i].isdigit() else i for i in range(count)
    ]


def _torch_free(visible: str | None) -> FreeMemory:
    def read() -> Mapping[int, int]:
        import torch

        n = torch.cuda.device_count()
        return {
            index: int(torch.cuda.mem_get_info(i)[0])
            for i, index in enumerate(_torch_indexes(visible, n))
        }

    return read


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
        out = []
        for i, index in enumerate(_torch_indexes(visible, torch.cuda.device_count())):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
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


def _nvidia_smi_free() -> Mapping[int, int]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    out = subprocess.run(
        [exe, "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    free = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit():
            try:
                free[int(parts[0])] = int(float(parts[1])) * _MIB
            except ValueError:
                continue
    return free


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
    return discover_gpus_live(env)[0]


def discover_gpus_live(
    env: Mapping[str, str] | None = None,
) -> tuple[list[GpuDevice], FreeMemory | None]:
    """This machine's GPUs (as :func:`discover_gpus`) and a reader of their free memory now.

    The reader asks the backend that found the devices (NVML ``nvmlDeviceGetMemoryInfo``,
    ``torch.cuda.mem_get_info``, ``nvidia-smi --query-gpu=memory.free``, or the ``AUTOML_GPUS``
    file again); it is None where the memory cannot change (an inline ``AUTOML_GPUS`` value).

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
            listed = restrict_visible(parse_gpus(raw), visible)
        except (ValueError, json.JSONDecodeError) as exc:
            raise SpecError(f"{exc}", path=GPUS_ENV) from None
        return listed, _file_free(raw.strip(), visible) if _is_path(raw.strip()) else None
    found = _nvml()
    if found is not None:
        return restrict_visible(found, visible), _nvml_free
    found = _torch(visible)
    if found is not None:
        return found, _torch_free(visible)  # already restricted by CUDA itself
    return restrict_visible(_nvidia_smi() or [], visible), _nvidia_smi_free


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


class _State:
    """The allocator's books, or a copy of them to try placements on."""

    __slots__ = ("cpu", "floor", "memory", "units")

    def __init__(
        self, units: dict[int, int], memory: dict[int, int], floor: dict[int, int], cpu: float
    ) -> None:
        self.units = units  # device units in use
        self.memory = memory  # bytes promised to the trials holding each device
        self.floor = floor  # the most external use seen when a holder was placed
        self.cpu = cpu

    def copy(self) -> _State:
        return _State(dict(self.units), dict(self.memory), dict(self.floor), self.cpu)


class ResourceAllocator:
    """Hands devices and CPU cores to trials; thread-safe.

    Args:
        devices: The GPUs trials may use (see :func:`discover_gpus`).
        cpus: Cores trials may hold together (default: ``os.cpu_count()``).
        free_memory: Reads the devices' free memory now (see :func:`discover_gpus_live`); None
            to pack by the ``memory_free`` the devices were found with.
        refresh: Seconds a reading of ``free_memory`` is reused for.

    ``gpu_memory`` requests fit where ``room = total - promised - external`` covers them (see
    the module docs): memory another process takes is skipped, and a trial that already holds
    its promised memory is not counted twice.
    """

    def __init__(
        self,
        devices: Sequence[GpuDevice],
        cpus: float | None = None,
        *,
        free_memory: FreeMemory | None = None,
        refresh: float = 0.5,
    ) -> None:
        self.devices = tuple(devices)
        self.cpus = float(cpus if cpus is not None else os.cpu_count() or 1)
        self._by_index = {d.index: d for d in self.devices}
        zero = dict.fromkeys(self._by_index, 0)
        self._state = _State(dict(zero), dict(zero), dict(zero), 0.0)
        self._free = {d.index: min(d.memory_free, d.memory_total) for d in self.devices}
        self._reader = free_memory
        self._refresh = refresh
        self._read_at: float | None = None
        self._held: dict[str, tuple[Request, Allocation, dict[int, int]]] = {}
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()

    # -- live memory --------------------------------------------------------------------------
    def _read_free(self, request: Request | None) -> None:
        """Refresh the free-memory reading if ``request`` (None: any) needs it and it is stale."""
        if self._reader is None:
            return
        if request is not None and (not request.gpu_memory or request.gpu <= 0):
            return
        with self._read_lock:  # one reader at a time; the others use its reading
            now = time.monotonic()
            if self._read_at is not None and now - self._read_at < self._refresh:
                return
            self._read_at = now
            try:
                got = dict(self._reader())
            except Exception:  # a driver hiccup or a half-written file: keep the last reading
                return
        with self._lock:
            for i, free in got.items():
                d = self._by_index.get(i)
                if d is not None:
                    self._free[i] = max(0, min(int(free), d.memory_total))

    def _external(self, d: GpuDevice, s: _State) -> int:
        """Memory on ``d`` that no trial here promised, as far as can be told."""
        used = d.memory_total - self._free[d.index]
        return max(0, used - s.memory[d.index], s.floor[d.index])

    def _room(self, d: GpuDevice, s: _State) -> int:
        return d.memory_total - s.memory[d.index] - self._external(d, s)

    # -- checks -----------------------------------------------------------------------------
    def problems(self, request: Request, field: str) -> list[SpecIssue]:
        """Why ``request`` can never fit here, even on an idle machine.

        With live free memory a device's total memory is the bound (memory others use now may
        be freed; the trial waits for it); without it, the free memory the device was found
        with.

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
                live = self._reader is not None

                def bound(d: GpuDevice) -> int:
                    return d.memory_total if live else d.memory_free

                fit = [d for d in self.devices if bound(d) >= request.gpu_memory]
                if len(fit) < need:
                    big = max(self.devices, key=bound)
                    what = "memory" if live else "free"
                    out.append(
                        SpecIssue(
                            f"{field}.gpu_memory",
                            f"needs {request.gpu_memory / (1 << 30):.3g} GiB on "
                            f"{need} device{'s' if need != 1 else ''}, but "
                            f"{len(fit)} {'has' if len(fit) == 1 else 'have'} that much {what} "
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
    def _place(self, r: Request, s: _State) -> tuple[int, ...] | None:
        if r.cpu is not None and s.cpu + r.cpu > self.cpus + 1e-9:
            return None
        if r.gpu <= 0:
            return ()
        need_mem = r.gpu_memory or 0

        def fits_memory(d: GpuDevice) -> bool:
            return not need_mem or self._room(d, s) >= need_mem

        if r.whole:
            idle = [d for d in self.devices if s.units[d.index] == 0 and fits_memory(d)]
            # Best fit by memory when it matters: keep the roomiest devices for bigger asks.
            idle.sort(key=lambda d: (self._room(d, s) if need_mem else 0, d.index))
            want = r.slots * r.whole
            return tuple(d.index for d in idle[:want]) if len(idle) >= want else None
        fits = [d for d in self.devices if _UNITS - s.units[d.index] >= r.units and fits_memory(d)]
        # Best fit: the tightest device first (least share left after placing, then memory).
        fits.sort(key=lambda d: (_UNITS - s.units[d.index] - r.units, self._room(d, s), d.index))
        return tuple(d.index for d in fits[: r.slots]) if len(fits) >= r.slots else None

    def _take(self, r: Request, devices: tuple[int, ...], s: _State) -> dict[int, int]:
        """Book ``r`` on ``devices``; the external use seen on each, for the trial's record."""
        seen = {}
        for i in devices:
            seen[i] = self._external(self._by_index[i], s)
            s.floor[i] = max(s.floor[i], seen[i])
            s.units[i] += _UNITS if r.whole else r.units
            s.memory[i] += r.gpu_memory or 0
        s.cpu += r.cpu or 0.0
        return seen

    def allocate(self, trial_id: str, request: Request) -> Allocation | None:
        """Reserve what ``request`` needs for ``trial_id``; None when it does not fit now."""
        self._read_free(request)
        with self._lock:
            if trial_id in self._held:
                return self._held[trial_id][1]
            devices = self._place(request, self._state)
            if devices is None:
                return None
            seen = self._take(request, devices, self._state)
            alloc = Allocation(
                devices, tuple(self._by_index[i].uuid for i in devices), request.cpu
            )
            self._held[trial_id] = (request, alloc, seen)
            return alloc

    def release(self, trial_id: str) -> None:
        """Give back what ``trial_id`` holds (nothing if it holds nothing)."""
        with self._lock:
            held = self._held.pop(trial_id, None)
            if held is None:
                return
            r, alloc, _ = held
            s = self._state
            for i in alloc.devices:
                s.units[i] -= _UNITS if r.whole else r.units
                s.memory[i] -= r.gpu_memory or 0
                # The external use a trial saw when placed stays counted while it lives.
                s.floor[i] = max(
                    (seen.get(i, 0) for _, a, seen in self._held.values() if i in a.devices),
                    default=0,
                )
            if r.cpu is not None:
                s.cpu = max(0.0, s.cpu - r.cpu)

    def capacity(self, request: Request, limit: int = 1024) -> int:
        """How many more trials of ``request`` fit now (at most ``limit``)."""
        self._read_free(request)
        with self._lock:
            s = self._state.copy()
            n = 0
            while n < limit:
                devices = self._place(request, s)
                if devices is None:
                    break
                self._take(request, devices, s)
                n += 1
            return n

    def usage(self) -> dict[int, float]:
        """The share of each device in use (1.0 = full)."""
        with self._lock:
            return {i: u / _UNITS for i, u in self._state.units.items()}

    def memory_room(self) -> dict[int, int]:
        """Bytes of each device a ``gpu_memory`` request may still take now."""
        self._read_free(None)
        with self._lock:
            return {d.index: max(0, self._room(d, self._state)) for d in self.devices}

    def held(self) -> dict[str, Allocation]:
        """What each trial holds now."""
        with self._lock:
            return {t: a for t, (_, a, _) in self._held.items()}
