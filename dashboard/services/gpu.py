"""NVIDIA GPU readings through NVML (`pynvml`, from the nvidia-ml-py package).

Blocking calls: run `GpuReader.read()` in a thread. NVML is initialised once and again after an
NVML error (driver reload, machine sleep). Every reading is optional: one call that fails (fans
on data-centre cards raise NotSupported) leaves that field None and the others intact. Without
pynvml, a driver or a GPU, `read()` returns an empty list.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from .sizes import gb

log = logging.getLogger("dashboard.gpu")

try:  # pragma: no cover - depends on the machine
    import pynvml
except ImportError:  # pragma: no cover
    pynvml = None


class GpuReader:
    """Reads every visible NVIDIA GPU; `visible_devices` is CUDA_VISIBLE_DEVICES (or None)."""

    def __init__(self, visible_devices: str | None = None) -> None:
        self._initialised = False
        self._unavailable_logged = False
        self._visible = _parse_visible(visible_devices)

    def read(self) -> list[dict[str, Any]]:
        """One reading per GPU: index, name, uuid, pci_bus_id, utilization, memory, temperature, power."""
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

    def close(self) -> None:
        """Release NVML."""
        if self._initialised:
            self._reset()

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
            "visible_to_comfyui": self._is_visible(index, _text(uuid)),
        }

    def _is_visible(self, index: int, uuid: str | None) -> bool:
        if self._visible is None:
            return True
        return str(index) in self._visible or (uuid is not None and any(
            uuid.startswith(v) or uuid.startswith("GPU-" + v) for v in self._visible if not v.isdigit()))


def _parse_visible(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value
