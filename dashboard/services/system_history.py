"""The last hour of system samples, in bounded memory, for sparklines and for peaks over a time window."""

from __future__ import annotations

import bisect
import math
from collections import deque
from itertools import islice
from typing import Any

#: How far back the history reaches, and the most samples it keeps (below a 1 s interval it spans less).
SPAN_SECONDS = 3600
MAX_SAMPLES = 3600
#: What a sample keeps of each GPU reading.
GPU_FIELDS = ("index", "utilization_percent", "memory_used_gb", "memory_total_gb", "memory_percent",
              "temperature_c", "power_w", "comfyui")


class SystemHistory:
    """A ring of samples, oldest first, each `{timestamp, cpu_percent, memory_percent, memory_used_gb,
    gpu_percent, disk_used_gb, disk_total_gb, gpus: [...]}`, `timestamp` in epoch seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.maxlen = max(1, min(MAX_SAMPLES, math.ceil(SPAN_SECONDS / interval)))
        self._samples: deque[dict[str, Any]] = deque(maxlen=self.maxlen)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: dict[str, Any]) -> None:
        """Keep one sample; one older than the newest (the clock went back) replaces nothing and is dropped."""
        if self._samples and sample["timestamp"] < self._samples[-1]["timestamp"]:
            return
        self._samples.append(sample)

    def last(self, seconds: float, now: float) -> list[dict[str, Any]]:
        """The samples of the last `seconds` before `now`, oldest first."""
        return self.samples_between(now - seconds, now)

    def samples_between(self, start: float, end: float) -> list[dict[str, Any]]:
        """The samples taken from `start` to `end` (epoch seconds, both included), oldest first.

        Cheap: a binary search for each end, then a copy of what lies between (the samples themselves are
        shared; do not change them).
        """
        samples = self._samples
        first = bisect.bisect_left(samples, start, key=_timestamp)
        stop = bisect.bisect_right(samples, end, lo=first, key=_timestamp)
        return list(islice(samples, first, stop))


def history_sample(reading: dict[str, Any]) -> dict[str, Any]:
    """What the history keeps of one of `SystemMonitor`'s readings."""
    memory = reading["memory"]
    return {
        "timestamp": reading["sampled_at"],
        "cpu_percent": reading["cpu_percent"],
        "memory_percent": reading["memory_percent"],
        "memory_used_gb": memory["used_gb"] if memory else None,
        "gpu_percent": reading["gpu_percent"],
        "disk_used_gb": reading["disk_used_gb"],
        "disk_total_gb": reading["disk_total_gb"],
        "gpus": [{name: gpu.get(name) for name in GPU_FIELDS} for gpu in reading["gpus"]],
    }


def _timestamp(sample: dict[str, Any]) -> float:
    return sample["timestamp"]


def peaks(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest RAM and VRAM in use over `samples` (GB, None without a reading): VRAM is the
    device ComfyUI computes on where it is marked, else every GPU together."""
    ram = [x["memory_used_gb"] for x in samples if x["memory_used_gb"] is not None]
    vram = []
    for sample in samples:
        gpus = [g for g in sample["gpus"] if g.get("memory_used_gb") is not None]
        marked = [g for g in gpus if g.get("comfyui")]
        if gpus:
            vram.append(sum(g["memory_used_gb"] for g in marked or gpus))
    return {"peak_ram_gb": max(ram) if ram else None, "peak_vram_gb": round(max(vram), 2) if vram else None,
            "samples": len(samples)}
