"""GPU readings: NVIDIA through NVML (`pynvml`, from the nvidia-ml-py package), AMD through `gpu_amd`.

Blocking calls: run `GpuReader.read()` in a thread. NVML is initialised once and again after an
NVML error (driver reload, machine sleep). Every reading is optional: one call that fails (fans
on data-centre cards raise NotSupported) leaves that field None and the others intact. Without
pynvml, a driver or a GPU, `read()` returns an empty list. `mark_comfyui` marks the device ComfyUI
computes on (as the in-process backend reports it, added when no reader sees it) and ComfyUI's process.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psutil

from .gpu_amd import AmdReader
from .sizes import gb

log = logging.getLogger("dashboard.gpu")

try:  # pragma: no cover - depends on the machine
    import pynvml
except ImportError:  # pragma: no cover
    pynvml = None


class GpuReader:
    """Reads every NVIDIA and AMD GPU; `visible_devices` is CUDA_VISIBLE_DEVICES (or None)."""

    def __init__(self, visible_devices: str | None = None, amd: AmdReader | None = None) -> None:
        self._initialised = False
        self._unavailable_logged = False
        self._visible = _parse_visible(visible_devices)
        self._amd = amd or AmdReader()

    def read(self) -> list[dict[str, Any]]:
        """One reading per GPU, NVIDIA's first: index, name, uuid, pci_bus_id, utilization, memory, temperature,
        power, vendor, source, processes (NVIDIA's), visible_to_comfyui, comfyui (False: see `mark_comfyui`)."""
        gpus = self._nvidia()
        for ordinal, amd in enumerate(self._amd.read()):  # ROCm numbers AMD GPUs from 0, as CUDA does NVIDIA's
            gpus.append({"index": len(gpus), **amd, "visible_to_comfyui": self._is_visible(ordinal, amd["uuid"]),
                         "comfyui": False})
        return gpus

    def close(self) -> None:
        """Release NVML and amdsmi."""
        if self._initialised:
            self._reset()
        self._amd.close()

    def _nvidia(self) -> list[dict[str, Any]]:
        if pynvml is None or not self._init():
            return []
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError:
            self._reset()
            return []
        gpus = []
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            except pynvml.NVMLError:
                continue
            gpus.append(self._read_one(index, handle))
        return gpus

    def _init(self) -> bool:
        if self._initialised:
            return True
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            if not self._unavailable_logged:
                log.debug("No NVIDIA GPU readings: %s", exc)
                self._unavailable_logged = True
            return False
        self._initialised = True
        return True

    def _reset(self) -> None:
        self._initialised = False
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()

    def _read_one(self, index: int, handle) -> dict[str, Any]:
        def value(call: Callable[[], Any]) -> Any:
            try:
                return call()
            except pynvml.NVMLError:
                return None

        name = value(lambda: pynvml.nvmlDeviceGetName(handle))
        uuid = value(lambda: pynvml.nvmlDeviceGetUUID(handle))
        pci = value(lambda: pynvml.nvmlDeviceGetPciInfo(handle))
        util = value(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
        memory = value(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
        temperature = value(lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
        power = value(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
        power_limit = value(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        bus_id = _text(pci.busId) if pci is not None else None
        return {
            "index": index,
            "name": _text(name),
            "uuid": _text(uuid),
            "pci_bus_id": bus_id,
            "utilization_percent": util.gpu if util is not None else None,
            "memory_used_gb": gb(memory.used) if memory is not None else None,
            "memory_total_gb": gb(memory.total) if memory is not None else None,
            "memory_percent": round(100 * memory.used / memory.total, 1) if memory and memory.total else None,
            "temperature_c": temperature,
            "power_w": round(power / 1000, 1) if power is not None else None,
            "power_limit_w": round(power_limit / 1000, 1) if power_limit is not None else None,
            "vendor": "nvidia",
            "source": "nvml",
            "processes": _processes(handle),
            "visible_to_comfyui": self._is_visible(index, _text(uuid)),
            "comfyui": False,
        }

    def _is_visible(self, index: int, uuid: str | None) -> bool:
        if self._visible is None:
            return True
        return str(index) in self._visible or (uuid is not None and any(
            uuid.startswith(v) or uuid.startswith("GPU-" + v) for v in self._visible if not v.isdigit()))


def _processes(handle) -> list[dict[str, Any]] | None:
    """The processes holding GPU memory (compute and graphics, one entry per pid); None when NVML cannot say."""
    found: dict[int, int | None] = {}
    answered = False
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        try:
            listed = getattr(pynvml, name)(handle)
        except (pynvml.NVMLError, AttributeError):
            continue
        answered = True
        for process in listed:
            used = getattr(process, "usedGpuMemory", None)  # None where the driver does not say (WDDM)
            found[process.pid] = max((v for v in (used, found.get(process.pid)) if v is not None), default=None)
    if not answered:
        return None
    return [{"pid": pid, "name": _process_name(pid), "used_memory_bytes": used, "comfyui": False}
            for pid, used in sorted(found.items(), key=lambda item: -(item[1] or 0))]


def _process_name(pid: int) -> str | None:
    """The process's name, or None (gone, or in another PID namespace, as in a container)."""
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return None


def mark_comfyui(gpus: list[dict[str, Any]], device: dict[str, Any] | None,
                 pid: int | None = None) -> list[dict[str, Any]]:
    """Mark ComfyUI's process `pid` in the process lists, and the entry of the device ComfyUI computes on
    (`comfyui: true`), or add that device as `source: "comfyui"` when no reader sees it.

    `device` is `ComfyBackend.device_memory()`'s answer; a CPU (or None) marks no GPU. The entry is found by
    UUID, else as the `index`-th GPU of its vendor that ComfyUI sees (CUDA and ROCm number those from 0).
    """
    if pid is not None:
        for gpu in gpus:
            for process in gpu.get("processes") or ():
                process["comfyui"] = process["pid"] == pid
    if not device or device.get("type") in (None, "cpu"):
        return gpus
    match = _comfyui_entry(gpus, device)
    if match is not None:
        match["comfyui"] = True
        if match.get("memory_total_gb") is None and device.get("total_bytes"):
            match.update(_memory(device))
        return gpus
    return [*gpus, {
        "index": max((g["index"] for g in gpus), default=-1) + 1, "name": device.get("name") or device["type"],
        "uuid": device.get("uuid"), "pci_bus_id": None, "utilization_percent": None, **_memory(device),
        "temperature_c": None, "power_w": None, "power_limit_w": None,
        "vendor": device.get("vendor"), "source": "comfyui",
        "processes": None, "visible_to_comfyui": True, "comfyui": True,
    }]


def _comfyui_entry(gpus: list[dict[str, Any]], device: dict[str, Any]) -> dict[str, Any] | None:
    uuid = _bare_uuid(device.get("uuid"))
    if uuid:
        for gpu in gpus:
            if _bare_uuid(gpu.get("uuid")) == uuid:
                return gpu
    if device["type"] != "cuda" or device.get("index") is None:
        return None
    vendor = device.get("vendor")
    seen = [g for g in gpus if g.get("visible_to_comfyui", True) and vendor in (None, g.get("vendor"))]
    return seen[device["index"]] if 0 <= device["index"] < len(seen) else None


def _bare_uuid(uuid: str | None) -> str | None:
    """NVML writes "GPU-<uuid>", torch "<uuid>"."""
    return uuid.lower().removeprefix("gpu-") if uuid else None


def _memory(device: dict[str, Any]) -> dict[str, Any]:
    total, free = device.get("total_bytes"), device.get("free_bytes")
    used = total - free if total is not None and free is not None else None
    return {"memory_used_gb": gb(used) if used is not None else None,
            "memory_total_gb": gb(total) if total is not None else None,
            "memory_percent": round(100 * used / total, 1) if used is not None and total else None}


def _parse_visible(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value
