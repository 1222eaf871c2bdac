"""Download jobs and their files, as the API shows them: statuses, priorities, progress, speed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

#: Priority name -> its rank (lower runs first).
PRIORITIES = {"high": 0, "normal": 1, "low": 2}


class JobStatus(str, Enum):
    """Where a download job is; the value is what the API says."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class FileStatus(str, Enum):
    """Where one file of a job is."""

    PENDING = "pending"
    DOWNLOADING = "downloading"
    DONE = "done"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


#: Jobs that are not finished, and those of them that transfer when a slot is free.
ACTIVE = (JobStatus.QUEUED, JobStatus.DOWNLOADING, JobStatus.PAUSED)
RUNNABLE = (JobStatus.QUEUED, JobStatus.DOWNLOADING)
#: Seconds between two speed samples of a job.
SPEED_SAMPLE = 0.5


@dataclass
class FileTask:
    """One file of a job: its model-folder path, where it comes from, how far it got."""

    path: str
    spec: dict[str, Any]
    size: int
    status: FileStatus = FileStatus.PENDING
    done_bytes: int = 0
    error: dict[str, Any] | None = None
    connections: int = 0

    def __post_init__(self) -> None:
        self.status = FileStatus(self.status)


@dataclass
class Job:
    """Installing one preset: its missing files, in order."""

    id: str
    preset_id: str
    priority: int
    created_at: float
    files: list[FileTask]
    status: JobStatus = JobStatus.QUEUED
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    speed: float = 0.0
    _sample: tuple[float, int] = field(default=(0.0, 0), repr=False)
    last_event: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.status = JobStatus(self.status)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files) or 1

    @property
    def done_bytes(self) -> int:
        return sum(f.size if f.status == FileStatus.DONE else min(f.done_bytes, f.size) for f in self.files)

    @property
    def current_file(self) -> str | None:
        running = [f.path for f in self.files if f.status == FileStatus.DOWNLOADING]
        return running[0] if running else None

    @property
    def priority_name(self) -> str:
        return next(k for k, v in PRIORITIES.items() if v == self.priority)

    def progressed(self, f: FileTask, done: int, total: int | None, connections: int) -> float | None:
        """Record a file's progress; returns the job's new speed when a sample was due, else None."""
        f.done_bytes, f.connections = done, connections
        if total:
            f.size = total
        now = time.monotonic()
        then, before = self._sample
        if now - then < SPEED_SAMPLE:
            return None
        self._sample = (now, self.done_bytes)
        if not then:
            return None
        rate = (self.done_bytes - before) / (now - then)
        self.speed = rate if self.speed == 0 else 0.6 * rate + 0.4 * self.speed
        return self.speed

    def summary(self) -> dict[str, Any]:
        """The job as `GET /api/downloads/{id}` answers it."""
        downloading = self.status == JobStatus.DOWNLOADING
        done, total = self.done_bytes, self.total_bytes
        remaining = max(0, total - done)
        return {
            "id": self.id,
            "preset_id": self.preset_id,
            "status": self.status.value,
            "priority": self.priority_name,
            "progress": 100.0 if self.status == JobStatus.COMPLETED else round(100 * done / total, 1),
            "speed_mbps": round(self.speed / 1e6, 2) if downloading else 0.0,
            "eta_seconds": int(remaining / self.speed) if self.speed > 0 and downloading else None,
            "current_file": self.current_file,
            "bytes_done": done,
            "bytes_total": total,
            "files": {"total": len(self.files), "completed": sum(f.status == FileStatus.DONE for f in self.files),
                      "failed": sum(f.status == FileStatus.FAILED for f in self.files)},
            "connections": sum(f.connections for f in self.files if f.status == FileStatus.DOWNLOADING),
            "created_at": self.created_at,
            "error": self.error,
        }
