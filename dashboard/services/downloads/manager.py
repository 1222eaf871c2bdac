"""Download jobs: installing presets file by file, in priority order, surviving restarts.

A job (`dl_...`) installs one preset: its dependencies' missing files first, then its own. At
most `max_downloads` files transfer at once, across jobs, taken by priority (high, normal, low)
then age. Jobs and files live in SQLite: after a restart, even a `kill -9`, queued and running
jobs continue from their `.part` files, paused ones stay paused, and finished files are never
fetched again. Progress goes out on the bus as `download_progress` (at most 4 a second per job),
then `download_complete`, and `error` (DOWNLOAD_FAILED) when a job fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ...errors import ApiError
from ...events import EventBus
from ...store import Store
from ..model_index import ModelFile, ModelIndex
from ..preset_schema import Preset, PresetFile
from ..presets import PresetService
from ..sizes import gb, human_duration, human_rate
from .sources import Tokens
from .transfer import DISK_MARGIN, READ_BUFFER, RetryPolicy, Transfer, part_paths, remove_partial

log = logging.getLogger("dashboard.downloads")

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
ACTIVE = ("queued", "downloading", "paused")
RUNNABLE = ("queued", "downloading")
EVENT_INTERVAL = 0.25


@dataclass
class FileTask:
    path: str
    spec: dict[str, Any]
    size: int
    status: str = "pending"  # pending, downloading, done, failed
    done_bytes: int = 0
    error: dict[str, Any] | None = None


@dataclass
class Job:
    id: str
    preset_id: str
    priority: int
    created_at: float
    files: list[FileTask]
    status: str = "queued"  # queued, downloading, paused, completed, failed, cancelled
    finished_at: float | None = None
    error: dict[str, Any] | None = None
    speed: float = 0.0
    _sample: tuple[float, int] = (0.0, 0)
    _last_event: float = 0.0

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files) or 1

    @property
    def done_bytes(self) -> int:
        return sum(f.size if f.status == "done" else min(f.done_bytes, f.size) for f in self.files)

    @property
    def current_file(self) -> str | None:
        running = [f.path for f in self.files if f.status == "downloading"]
        return running[0] if running else None

    def summary(self) -> dict[str, Any]:
        remaining = max(0, self.total_bytes - self.done_bytes)
        eta = int(remaining / self.speed) if self.speed > 0 and self.status == "downloading" else None
        return {
            "id": self.id,
            "preset_id": self.preset_id,
            "status": self.status,
            "priority": next(k for k, v in PRIORITIES.items() if v == self.priority),
            "progress": 100.0 if self.status == "completed" else round(100 * self.done_bytes / self.total_bytes, 1),
            "speed_mbps": round(self.speed / 1e6, 2) if self.status == "downloading" else 0.0,
            "eta_seconds": eta,
            "current_file": self.current_file,
            "bytes_done": self.done_bytes,
            "bytes_total": self.total_bytes,
            "files": {"total": len(self.files), "completed": sum(f.status == "done" for f in self.files),
                      "failed": sum(f.status == "failed" for f in self.files)},
            "created_at": self.created_at,
            "error": self.error,
        }


class DownloadManager:
    """Owns every download job; see the module docstring."""

    def __init__(self, store: Store, bus: EventBus, presets: PresetService, models: ModelIndex, tokens: Tokens,
                 max_downloads: int = 2, read_timeout: float = 60, retry: RetryPolicy | None = None,
                 forget_folder: Callable[[str], None] = lambda folder: None,
                 in_use: Callable[[list[str]], Awaitable[list[str]]] | None = None) -> None:
        self.store = store
        self.bus = bus
        self.presets = presets
        self.models = models
        self.tokens = tokens
        self.max_downloads = max_downloads
        self.read_timeout = read_timeout
        self.retry = retry
        self.forget_folder = forget_folder  # ComfyUI's file-list cache, after files are deleted
        self.in_use = in_use  # which model paths a queued or running prompt names
        self.jobs: dict[str, Job] = {}
        self.installed: dict[str, dict[str, Any]] = {}
        self._running: dict[tuple[str, str], asyncio.Task] = {}
        self._session: aiohttp.ClientSession | None = None
        self.transfer: Transfer | None = None
        self._stopping = False
        self._installing = asyncio.Lock()

    # lifecycle

    async def start(self) -> None:
        """Load state and continue what was running when the process stopped."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.read_timeout)
        self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False, read_bufsize=READ_BUFFER)
        self.transfer = Transfer(self._session, self.tokens, self.retry)
        self.installed.update(await self.store.installed_files())
        for row in await self.store.downloads():
            files = [FileTask(f["path"], f["spec"], f["size"], "pending" if f["status"] == "downloading"
                              else f["status"], error=f["error"]) for f in row["files"]]
            job = Job(row["id"], row["preset_id"], row["priority"], row["created_at"], files,
                      "queued" if row["status"] == "downloading" else row["status"], row["finished_at"], row["error"])
            self.jobs[job.id] = job
        await asyncio.get_running_loop().run_in_executor(None, self._measure_parts)
        self._pump()

    async def stop(self) -> None:
        """Stop transfers (their `.part` files stay for the next start)."""
        self._stopping = True
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # commands

    async def install(self, preset_id: str, force: bool = False, priority: str = "normal") -> dict[str, Any]:
        """Queue a preset's missing files (dependencies first); the body of POST .../install.

        Installing a preset that already has a download answers that download (resuming it if paused).
        """
        async with self._installing:  # one decision at a time: two clicks make one job
            return await self._install(preset_id, force, priority)

    async def _install(self, preset_id: str, force: bool, priority: str) -> dict[str, Any]:
        await self.presets.refresh()
        preset = self.presets.require(preset_id)
        for job in self.jobs.values():
            if job.preset_id == preset_id and job.status in ACTIVE:
                if job.status == "paused":
                    await self.resume(job.id)
                return self._install_answer(job)
        await self.models.refresh(force=True)
        if not force and self.presets.is_installed(preset):
            raise ApiError("PRESET_ALREADY_INSTALLED", f"{preset.name} is already installed",
                           {"preset_id": preset_id, "hint": "use force to fetch unverified files again"})
        files = self._missing_files(preset, force)
        if not files:
            return {"status": "installed", "preset_id": preset_id, "download_id": None,
                    "estimated_time_seconds": 0, "total_size_gb": 0.0}
        await self._check_space(files)
        job = Job(f"dl_{secrets.token_hex(6)}", preset_id, PRIORITIES[priority], time.time(), files)
        await self.store.create_download(
            {"id": job.id, "preset_id": preset_id, "status": job.status, "priority": job.priority,
             "created_at": job.created_at},
            [{"path": f.path, "spec": f.spec, "size": f.size, "status": f.status} for f in files])
        self.jobs[job.id] = job
        self._pump()
        self._publish_progress(job, force=True)
        return self._install_answer(job)

    async def pause(self, download_id: str) -> dict[str, Any]:
        job = self._require(download_id)
        if job.status not in ("queued", "downloading"):
            raise self._conflict(job, "pause")
        await self._set_status(job, "paused")
        await self._stop_files(job)
        self._publish_progress(job, force=True)
        return {"status": "paused", "download_id": job.id}

    async def resume(self, download_id: str) -> dict[str, Any]:
        job = self._require(download_id)
        if job.status not in ("paused", "failed"):
            raise self._conflict(job, "resume")
        for f in job.files:
            if f.status == "failed":
                f.status, f.error = "pending", None
                await self.store.update_file(job.id, f.path, status="pending", error=None)
        job.error = None
        await self._set_status(job, "queued", error=None)
        self._pump()
        return {"status": "downloading", "download_id": job.id}

    async def cancel(self, download_id: str) -> dict[str, Any]:
        job = self._require(download_id)
        if job.status not in ACTIVE and job.status != "failed":
            raise self._conflict(job, "cancel")
        await self._set_status(job, "cancelled")
        await self._stop_files(job)
        unfinished = [self._target(f.path) for f in job.files if f.status != "done"]
        await asyncio.get_running_loop().run_in_executor(None, lambda: [remove_partial(t) for t in unfinished])
        self._complete_event(job, "cancelled")
        return {"status": "cancelled", "download_id": job.id, "files_removed": True}

    async def set_priority(self, download_id: str, priority: str) -> dict[str, Any]:
        job = self._require(download_id)
        job.priority = PRIORITIES[priority]
        await self.store.update_download(job.id, priority=job.priority)
        self._pump()
        return job.summary()

    async def uninstall(self, preset_id: str, force: bool = False) -> dict[str, Any]:
        """Remove a preset's files, except those another installed preset uses.

        Refused with MODEL_IN_USE (nothing cancelled or removed) while a queued or running prompt
        names one of them, unless `force`.
        """
        await self.presets.refresh()
        preset = self.presets.require(preset_id)
        if self.in_use is not None and not force:
            used = await self.in_use([m.path for m in await self._removable(preset)])
            if used:
                raise ApiError("MODEL_IN_USE", f"A queued or running prompt uses {len(used)} of {preset.name}'s "
                               "files; use force to uninstall it anyway", {"preset_id": preset_id, "paths": used})
        for job in list(self.jobs.values()):
            if job.preset_id == preset_id and job.status in ACTIVE:
                await self.cancel(job.id)
        doomed = await self._removable(preset)

        def delete() -> tuple[int, int]:
            removed = freed = 0
            for model in doomed:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(model.abspath)
                    removed += 1
                    freed += model.size
            return removed, freed

        removed, freed = await asyncio.get_running_loop().run_in_executor(None, delete)
        paths = [m.path for m in doomed]
        await self.store.forget_installed(paths)
        for path in paths:
            self.installed.pop(path, None)
        self.models.invalidate()
        for folder in {m.type for m in doomed}:
            self.forget_folder(folder)
        return {"status": "uninstalled", "preset_id": preset_id, "files_removed": removed,
                "space_freed_gb": gb(freed)}

    async def _removable(self, preset: Preset) -> list[ModelFile]:
        """The preset's files on disk that no other installed preset uses."""
        await self.models.refresh(force=True)
        others = self.presets.catalogue.presets.values()
        kept = {f.path for p in others if p.id != preset.id and self.presets.is_installed(p) for f in p.files}
        found = [self.models.get(f.path) for f in preset.files if f.path not in kept]
        return [m for m in found if m is not None]

    # queries

    def list(self) -> dict[str, Any]:
        jobs = sorted(self.jobs.values(), key=lambda j: (j.status not in ACTIVE, j.priority, j.created_at))
        return {"downloads": [j.summary() for j in jobs],
                "active": sum(j.status in ("queued", "downloading") for j in jobs), "total": len(jobs)}

    def get(self, download_id: str) -> dict[str, Any]:
        return self._require(download_id).summary()

    def preset_progress(self, preset_id: str) -> dict[str, Any] | None:
        """Live progress of a preset's active or failed job, for GET /api/presets/{id}/status."""
        jobs = [j for j in self.jobs.values() if j.preset_id == preset_id and j.status in (*ACTIVE, "failed")]
        if not jobs:
            return None
        job = max(jobs, key=lambda j: j.created_at)
        s = job.summary()
        return {"status": "installing" if job.status in RUNNABLE else job.status,
                "progress": s["progress"], "current_file": s["current_file"],
                "download_speed_mbps": s["speed_mbps"], "eta_seconds": s["eta_seconds"], "files": s["files"],
                "download_id": job.id, "error": job.error}

    # internals

    def _install_answer(self, job: Job) -> dict[str, Any]:
        return {"status": "installing", "preset_id": job.preset_id, "download_id": job.id,
                "estimated_time_seconds": job.summary()["eta_seconds"], "total_size_gb": gb(job.total_bytes)}

    def _require(self, download_id: str) -> Job:
        job = self.jobs.get(download_id)
        if job is None:
            raise ApiError("DOWNLOAD_NOT_FOUND", f"No download with id {download_id!r}", {"download_id": download_id})
        return job

    @staticmethod
    def _conflict(job: Job, action: str) -> ApiError:
        return ApiError("DOWNLOAD_CONFLICT", f"Cannot {action} a download that is {job.status}",
                        {"download_id": job.id, "status": job.status})

    def _missing_files(self, preset: Preset, force: bool) -> list[FileTask]:
        ordered: list[Preset] = []

        def visit(p: Preset) -> None:
            for dep_id in p.dependencies:
                dep = self.presets.catalogue.get(dep_id)
                if dep is not None and dep not in ordered and dep is not preset:
                    visit(dep)
            if p not in ordered:
                ordered.append(p)

        visit(preset)
        tasks: dict[str, FileTask] = {}
        for p in ordered:
            for f in p.files:
                if f.optional or f.path in tasks or self._verified(f):
                    continue
                if not force and self.models.get(f.path) is not None and self.models.get(f.path).size > 0:
                    continue  # the user's own copy: trusted unless forced
                tasks[f.path] = FileTask(f.path, _spec(f), f.size)
        return list(tasks.values())

    def _verified(self, f: PresetFile) -> bool:
        record, model = self.installed.get(f.path), self.models.get(f.path)
        return (record is not None and model is not None and model.size == record["size"]
                and (f.sha256 is None or f.sha256 == record["sha256"]))

    async def _check_space(self, files: list[FileTask]) -> None:
        targets = [(self._target(f.path), f.size) for f in files]

        def check() -> None:
            needed: dict[int, list] = {}
            for target, size in targets:
                probe = target.parent
                while not probe.exists():
                    probe = probe.parent
                part = part_paths(target)[0]
                have = part.stat().st_size if part.exists() else 0
                device = probe.stat().st_dev
                entry = needed.setdefault(device, [probe, 0])
                entry[1] += max(0, size - have)
            for probe, missing in needed.values():
                free = shutil.disk_usage(probe).free
                if free < missing + DISK_MARGIN:
                    raise ApiError("INSUFFICIENT_STORAGE", "Not enough disk space for this preset",
                                   {"needed_gb": gb(missing + DISK_MARGIN), "free_gb": gb(free), "path": str(probe)})

        await asyncio.get_running_loop().run_in_executor(None, check)

    def _target(self, path: str) -> Path:
        folder, _, relpath = path.partition("/")
        root = self.models.default_root(folder)
        if root is None:
            raise ApiError("DOWNLOAD_FAILED", f"No model folder for {folder!r}", {"path": path})
        return root.joinpath(*relpath.split("/"))

    def _measure_parts(self) -> None:
        for job in self.jobs.values():
            if job.status not in ACTIVE:
                continue
            for f in job.files:
                if f.status == "pending":
                    with contextlib.suppress(OSError, ApiError):
                        f.done_bytes = part_paths(self._target(f.path))[0].stat().st_size

    def _pump(self) -> None:
        """Start file transfers while there are free slots, best job first."""
        if self._stopping:
            return
        busy = {path for _job, path in self._running}
        runnable = sorted((j for j in self.jobs.values() if j.status in RUNNABLE),
                          key=lambda j: (j.priority, j.created_at))
        for job in runnable:
            for f in job.files:
                if len(self._running) >= self.max_downloads:
                    return
                if f.status == "pending" and f.path not in busy:
                    busy.add(f.path)
                    f.status = "downloading"
                    self._running[(job.id, f.path)] = asyncio.create_task(self._run_file(job, f))
            if job.status == "queued" and any(f.status == "downloading" for f in job.files):
                job.status = "downloading"  # persisted by _run_file

    async def _run_file(self, job: Job, f: FileTask) -> None:
        try:
            await self.store.update_download(job.id, status=job.status)
            await self.store.update_file(job.id, f.path, status="downloading")
            await self.models.refresh(force=True)
            preset_file = _preset_file(f)
            if not self._verified(preset_file):
                target = self._target(f.path)
                result = await self.transfer.fetch(target, f.spec, lambda done, total: self._progress(job, f,
                                                                                                      done, total))
                record = {"path": f.path, "size": result.size, "sha256": result.sha256, "etag": result.etag,
                          "commit_hash": result.commit, "preset_id": job.preset_id}
                await self.store.record_installed(record)
                self.installed[f.path] = {**record, "installed_at": time.time()}
                self.models.invalidate()
            f.status, f.done_bytes = "done", f.size
            await self.store.update_file(job.id, f.path, status="done", size=f.size)
        except asyncio.CancelledError:
            if f.status == "downloading":
                f.status = "pending"
            raise
        except ApiError as exc:
            await self._fail(job, f, exc)
        except Exception as exc:
            log.exception("Download of %s failed", f.path)
            await self._fail(job, f, ApiError("DOWNLOAD_FAILED", f"Unexpected error: {exc.__class__.__name__}",
                                              {"file": f.path}))
        finally:
            self._running.pop((job.id, f.path), None)
            if f.status == "downloading":
                f.status = "pending"
            with contextlib.suppress(RuntimeError):
                await self._after_file(job)

    async def _after_file(self, job: Job) -> None:
        if job.status in RUNNABLE and all(f.status == "done" for f in job.files):
            job.finished_at = time.time()
            await self._set_status(job, "completed", finished_at=job.finished_at)
            self._publish_progress(job, force=True)
            self._complete_event(job, "success")
        self._pump()

    async def _fail(self, job: Job, f: FileTask, error: ApiError) -> None:
        f.status, f.error = "failed", {"code": error.code, "message": error.message, "details": error.details}
        await self.store.update_file(job.id, f.path, status="failed", error=f.error)
        if job.status not in RUNNABLE:
            return
        job.error = {**f.error, "details": {"file": f.path, **error.details}}
        await self._set_status(job, "failed", error=job.error)
        await self._stop_files(job)
        log.warning("Download %s (%s) failed: %s", job.id, job.preset_id, error.message)
        details = {**job.error["details"], "download_id": job.id, "preset_id": job.preset_id}
        self.bus.publish("error", {"code": error.code, "message": error.message, "details": details}, "downloads")
        self._complete_event(job, "failed")

    async def _stop_files(self, job: Job) -> None:
        tasks = [t for (job_id, _path), t in self._running.items() if job_id == job.id]
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)

    async def _set_status(self, job: Job, status: str, **fields: Any) -> None:
        job.status = status
        await self.store.update_download(job.id, status=status, **fields)

    def _progress(self, job: Job, f: FileTask, done: int, total: int | None) -> None:
        f.done_bytes = done
        if total:
            f.size = total
        now = time.monotonic()
        then, before = job._sample
        if now - then >= 0.5:
            if then:
                rate = (job.done_bytes - before) / (now - then)
                job.speed = rate if job.speed == 0 else 0.6 * rate + 0.4 * job.speed
            job._sample = (now, job.done_bytes)
        self._publish_progress(job)

    def _publish_progress(self, job: Job, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - job._last_event < EVENT_INTERVAL:
            return
        job._last_event = now
        s = job.summary()
        self.bus.publish("download_progress", {
            "download_id": job.id, "preset_id": job.preset_id, "status": job.status, "progress": s["progress"],
            "current_file": s["current_file"], "speed": human_rate(job.speed if job.status == "downloading" else 0),
            "eta": human_duration(s["eta_seconds"]), "files": {"total": s["files"]["total"],
                                                              "completed": s["files"]["completed"]},
        }, "downloads")

    def _complete_event(self, job: Job, status: str) -> None:
        self.bus.publish("download_complete", {
            "download_id": job.id, "preset_id": job.preset_id, "status": status,
            "time_taken_seconds": int((job.finished_at or time.time()) - job.created_at),
        }, "downloads")


def _spec(f: PresetFile) -> dict[str, Any]:
    return {"path": f.path, "repo": f.repo, "repo_file": f.repo_file, "revision": f.revision, "url": f.url,
            "sha256": f.sha256, "size": f.size}


def _preset_file(f: FileTask) -> PresetFile:
    folder, _, relpath = f.path.partition("/")
    s = f.spec
    return PresetFile(folder, relpath, f.size, sha256=s.get("sha256"), repo=s.get("repo"),
                      repo_file=s.get("repo_file"), revision=s.get("revision") or "main", url=s.get("url"))
