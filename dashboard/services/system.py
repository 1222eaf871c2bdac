"""System status: CPU, RAM, disk of the models volume, GPUs and ComfyUI's reachability.

A background task samples everything every `interval` seconds in a worker thread and keeps the
last sample; requests read that sample and never wait on psutil, NVML or ComfyUI. Each sample is
also published on the bus as `system_status` (channel `system`) and kept in the history (the last
hour, `system_history.py`). Inside ComfyUI the GPU ComfyUI computes on is marked from ComfyUI's own
memory readings (`ComfyBackend.device_memory`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import psutil

from ..comfy.backend import ComfyBackend
from ..events import EventBus
from ..threads import LOOP_DEFAULT, Threads
from .gpu import GpuReader, mark_comfyui
from .sizes import gb
from .system_history import SystemHistory, history_sample, peaks

log = logging.getLogger("dashboard.system")


class SystemMonitor:
    """Samples the machine in the background; `status()` answers from the last sample."""

    def __init__(self, bus: EventBus, backend: ComfyBackend, disk_path: Path, interval: float,
                 gpu_reader: GpuReader | None = None, threads: Threads = LOOP_DEFAULT) -> None:
        self._bus = bus
        self._threads = threads
        self._backend = backend
        self._disk_path = disk_path
        self._interval = interval
        self._gpus = gpu_reader or GpuReader()
        self._started = time.monotonic()
        self._task: asyncio.Task | None = None
        self._sample: dict[str, Any] = _empty_sample()
        self._comfyui_ok: bool | None = None
        self.history = SystemHistory(interval)
        self.samples_taken = 0

    @property
    def uptime(self) -> float:
        return time.monotonic() - self._started

    async def start(self) -> None:
        """Take a first sample, then keep sampling in the background."""
        psutil.cpu_percent(interval=None)  # primes the counter, returns at once
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="dashboard-system-sampler")

    async def stop(self) -> None:
        """Stop sampling and release NVML."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._threads.run(self._gpus.close)

    async def refresh(self) -> None:
        """Take one sample now (off the loop) and publish it."""
        sample = await self._threads.run(self._read)
        self._comfyui_ok = await self._backend.reachable()
        self._sample = sample
        self.history.add(history_sample(sample))
        self.samples_taken += 1
        self._bus.publish("system_status", self.event_data(), "system")

    def status(self) -> dict[str, Any]:
        """The body of GET /api/system/status, from the last sample."""
        s = self._sample
        return {
            "status": "running",
            "uptime": int(self.uptime),
            "services": {
                "dashboard": "running",
                "comfyui": {True: "running", False: "unavailable"}.get(self._comfyui_ok, "unknown"),
                "preset_manager": "running",
            },
            "resources": {
                "cpu_percent": s["cpu_percent"],
                "memory_percent": s["memory_percent"],
                "gpu_percent": s["gpu_percent"],
                "disk_used_gb": s["disk_used_gb"],
                "disk_total_gb": s["disk_total_gb"],
            },
            "memory": s["memory"],
            "disk": s["disk"],
            "gpus": s["gpus"],
            "sampled_at": s["sampled_at"],
        }

    def recent(self, minutes: int) -> dict[str, Any]:
        """The body of GET /api/system/history: `{interval, samples}` of the last `minutes`, oldest first."""
        return {"interval": self._interval, "samples": self.history.last(minutes * 60, time.time())}

    def samples_between(self, start: float, end: float) -> list[dict[str, Any]]:
        """The history's samples from `start` to `end` (epoch seconds), oldest first; see `SystemHistory`."""
        return self.history.samples_between(start, end)

    def usage_between(self, start: float, end: float) -> dict[str, Any]:
        """`{duration_seconds, peak_ram_gb, peak_vram_gb, samples}` over a time window (a prompt's run),
        the sample taken right after it included (a prompt shorter than the interval still gets one)."""
        return {"duration_seconds": round(max(0.0, end - start), 3),
                **peaks(self.history.samples_between(start, end + self._interval))}

    async def disk_now(self) -> dict[str, Any] | None:
        """The models volume's usage read now (off the loop), for answers that must not lag a deletion."""
        return await self._threads.run(_disk_usage, self._disk_path)

    def event_data(self) -> dict[str, Any]:
        """The `system_status` WebSocket message's data."""
        s = self._sample
        return {
            "cpu_usage": s["cpu_percent"],
            "memory_usage": s["memory_percent"],
            "gpu_usage": s["gpu_percent"],
            "disk_usage": s["disk"]["usage_percent"] if s["disk"] else None,
            "gpus": s["gpus"],
            "sampled_at": s["sampled_at"],
        }

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("System sampling failed")

    def _read(self) -> dict[str, Any]:
        memory = psutil.virtual_memory()
        disk = _disk_usage(self._disk_path)
        in_comfyui = getattr(self._backend, "kind", None) == "in_process"
        gpus = mark_comfyui(self._gpus.read(), self._device_memory(), os.getpid() if in_comfyui else None)
        visible = [g for g in gpus if g["visible_to_comfyui"] and g["utilization_percent"] is not None]
        return {
            "cpu_percent": round(psutil.cpu_percent(interval=None), 1),
            "memory_percent": round(memory.percent, 1),
            "memory": {"used_gb": gb(memory.total - memory.available), "total_gb": gb(memory.total),
                       "available_gb": gb(memory.available)},
            "gpu_percent": max((g["utilization_percent"] for g in visible), default=None),
            "gpus": gpus,
            "disk": disk,
            "disk_used_gb": disk["used_gb"] if disk else None,
            "disk_total_gb": disk["total_gb"] if disk else None,
            "sampled_at": time.time(),
        }

    def _device_memory(self) -> dict[str, Any] | None:
        try:
            return self._backend.device_memory()
        except Exception:  # a ComfyUI whose memory functions changed must not stop the sampling
            log.debug("ComfyUI's device memory could not be read", exc_info=True)
            return None


def _disk_usage(path: Path) -> dict[str, Any] | None:
    """Usage of the volume holding `path` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = psutil.disk_usage(str(probe))
    except OSError:
        return None
    return {
        "path": str(path),
        "used_gb": gb(usage.used),
        "total_gb": gb(usage.total),
        "available_gb": gb(usage.free),
        "usage_percent": round(usage.percent, 1),
    }


def _empty_sample() -> dict[str, Any]:
    return {"cpu_percent": None, "memory_percent": None, "memory": None, "gpu_percent": None, "gpus": [],
            "disk": None, "disk_used_gb": None, "disk_total_gb": None, "sampled_at": None}
