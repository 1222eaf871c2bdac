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

    @classmethod
    def restore(cls, row: dict[str, Any]) -> FileTask:
        """A file as the store kept it; one that was downloading when the process stopped is pending again."""
        status = FileStatus.PENDING if row["status"] == FileStatus.DOWNLOADING else row["status"]
        return cls(row["path"], row["spec"], row["size"], status, error=row["error"])

    def start(self) -> None:
        """Its transfer begins."""
        self.status = FileStatus.DOWNLOADING

    def stop(self) -> None:
        """Its transfer ended without a verdict (paused, cancelled, stopped): pending again if it was running."""
        if self.status == FileStatus.DOWNLOADING:
            self.status = FileStatus.PENDING

    def finish(self) -> None:
        """It is in place, verified."""
        self.status, self.done_bytes = FileStatus.DONE, self.size

    def fail(self, error: dict[str, Any]) -> None:
        """It failed with `error` (`{code, message, details}`)."""
        self.status, self.error = FileStatus.FAILED, error

    def retry(self) -> bool:
        """Pending again if it had failed; whether it had."""
        if self.status != FileStatus.FAILED:
            return False
        self.status, self.error = FileStatus.PENDING, None
        return True

    def measured(self, held: int) -> None:
        """Its `.part` holds `held` bytes (looked at before it resumes)."""
        self.done_bytes = held


@dataclass
class Job:
    """Installing one preset (its missing files, in order), or one model from a URL (`preset_id` None)."""

    id: str
    preset_id: str | None
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

    @classmethod
    def restore(cls, row: dict[str, Any]) -> Job:
        """A job as the store kept it (`Store.downloads()`); one that was downloading is queued again."""
        status = JobStatus.QUEUED if row["status"] == JobStatus.DOWNLOADING else row["status"]
        return cls(row["id"], row["preset_id"] or None, row["priority"], row["created_at"],
                   [FileTask.restore(f) for f in row["files"]], status, row["finished_at"], row["error"])

    # what happens to a job

    def start_file(self, f: FileTask) -> None:
        """One of its files begins to transfer: a queued job is downloading from now on."""
        f.start()
        if self.status == JobStatus.QUEUED:
            self.status = JobStatus.DOWNLOADING

    def pause(self) -> None:
        """Paused by the user: its transfers stop, their `.part` files stay."""
        self.status = JobStatus.PAUSED

    def cancel(self) -> None:
        """Cancelled by the user: its transfers stop and its unfinished files go."""
        self.status = JobStatus.CANCELLED

    def resume(self) -> list[FileTask]:
        """Queued again after a pause or a failure, without the error; returns the failed files made pending again."""
        retried = [f for f in self.files if f.retry()]
        self.status, self.error = JobStatus.QUEUED, None
        return retried

    def reprioritize(self, priority: int) -> None:
        """Takes its turn at another rank (`PRIORITIES`)."""
        self.priority = priority

    def finish(self) -> None:
        """Every file is in place and verified."""
        self.status, self.finished_at = JobStatus.COMPLETED, time.time()

    def fail(self, error: dict[str, Any]) -> None:
        """It failed with `error` (`{code, message, details}`); the files still running are stopped by the manager."""
        self.status, self.error = JobStatus.FAILED, error

    def event_due(self, interval: float, force: bool = False) -> bool:
        """Whether a progress event may go out now (at most one per `interval` seconds unless `force`);
        if so, the clock starts again."""
        now = time.monotonic()
        if not force and now - self.last_event < interval:
            return False
        self.last_event = now
        return True

    # how far it got

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
            "source": self.files[0].spec.get("source") if self.preset_id is None and self.files else None,
            "path": self.files[0].path if self.preset_id is None and self.files else None,
        }
