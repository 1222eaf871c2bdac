"""Download jobs: installing presets file by file, in priority order, surviving restarts.

A job (`dl_...`) installs one preset: its dependencies' missing files first, then its own; or one
model from a URL (`download_url`, no preset: what the URL stands for is `urls.py`'s). At
most `max_downloads` files transfer at once, across jobs, taken by priority (high, normal, low)
then age. Jobs and files live in SQLite: after a restart, even a `kill -9`, queued and running
jobs continue from their `.part` files, paused ones stay paused, and finished files are never
fetched again. Progress goes out on the bus as `download_progress` (at most 4 a second per job),
then `download_complete`, and `error` (DOWNLOAD_FAILED) when a job fails. What to fetch and
where is the `Planner`'s; the limits every transfer shares are `Limits`'; removing a preset's
files is the `Uninstaller`'s; following the records on the volume is `VolumeRecords`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from ...errors import (
    DashboardError,
    DownloadConflict,
    DownloadFailed,
    DownloadNotFound,
    InsufficientStorage,
    InternalError,
    ModelExists,
    ModelNotFound,
    OutsideModelFolders,
    PresetAlreadyInstalled,
    invalid,
)
from ...events import Event, EventBus
from ...store import Store
from ...threads import LOOP_DEFAULT, Threads
from ..model_index import ModelIndex
from ..presets import PresetService
from ..sizes import gb, human_duration, human_rate
from . import urls
from .jobs import ACTIVE, PRIORITIES, RUNNABLE, FileStatus, FileTask, Job, JobStatus
from .limits import Limits, LimitSettings
from .lock import PartLock
from .plan import Plans
from .planner import Planner, file_source, preset_file
from .records import remove_record
from .sources import Tokens
from .transfer import READ_BUFFER, RetryPolicy, Transfer, bytes_held, remove_partial
from .uninstall import Uninstaller
from .verify import verify_files
from .volume import VolumeRecords

log = logging.getLogger("dashboard.downloads")

EVENT_INTERVAL = 0.25


class DownloadManager:
    """Owns every download job; see the module docstring."""

    def __init__(self, store: Store, bus: EventBus, presets: PresetService, index: ModelIndex, tokens: Tokens,
                 download_hosts: tuple[str, ...] = (), max_downloads: int = 2, read_timeout: float = 60,
                 retry: RetryPolicy | None = None,
                 forget_folder: Callable[[str], None] = lambda folder: None,
                 in_use: Callable[[list[str]], Awaitable[list[str]]] | None = None,
                 limits: Limits | None = None, threads: Threads = LOOP_DEFAULT) -> None:
        self.store = store
        self.threads = threads
        self.bus = bus
        self.presets = presets
        self.index = index
        self.tokens = tokens
        self.download_hosts = download_hosts
        self.max_downloads = max_downloads
        self.read_timeout = read_timeout
        self.retry = retry
        self.limits = limits or Limits(LimitSettings())
        self.jobs: dict[str, Job] = {}
        self.installed: dict[str, dict[str, Any]] = {}
        self.planner = Planner(presets, index, self.installed, threads)
        self.forget_folder = forget_folder  # ComfyUI's cached file list of a folder, after a file lands
        self.uninstaller = Uninstaller(self.planner, store, forget_folder, in_use, threads)
        self.volume = VolumeRecords(index, self.planner, store, bus, threads)
        self.plans = Plans(self.planner, presets, tokens, threads)
        self._running: dict[tuple[str, str], asyncio.Task] = {}
        self._session: aiohttp.ClientSession | None = None
        self.transfer: Transfer | None = None
        self._stopping = False
        self._unsubscribe: Callable[[], None] | None = None
        self._watch: asyncio.Task | None = None
        self.throughput = 0.0  # bytes/s last measured on any download: estimates for new ones
        self._installing = asyncio.Lock()

    # lifecycle

    async def start(self) -> None:
        """Load state and continue what was running when the process stopped."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.read_timeout)
        self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False, read_bufsize=READ_BUFFER)
        self.transfer = Transfer(self._session, self.tokens, self.retry, self.limits.connections,
                                 self.limits.bandwidth, threads=self.threads)
        self._unsubscribe = self.bus.subscribe(self._on_event)
        self.installed.update(await self.store.installed_files())
        await self.volume.adopt()
        self._watch = asyncio.create_task(self.volume.follow())
        for row in await self.store.downloads():
            job = Job.restore(row)
            self.jobs[job.id] = job
        await self.threads.run(self._measure_parts)
        self._pump()

    async def stop(self) -> None:
        """Stop transfers (their `.part` files stay for the next start)."""
        self._stopping = True
        self.limits.set_generating(False)  # a stopped dashboard yields no more: its threads' priority back
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
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
                if job.status == JobStatus.PAUSED:
                    await self.resume(job.id)
                return self._install_answer(job)
        await self.index.refresh(force=True)
        if not force and self.presets.is_installed(preset):
            raise PresetAlreadyInstalled(f"{preset.name} is already installed",
                                         {"preset_id": preset_id, "hint": "use force to fetch unverified files again"})
        files = self.planner.missing_files(preset, force)
        if not files:
            return {"status": "installed", "preset_id": preset_id, "download_id": None,
                    "estimated_time_seconds": 0, "total_size_gb": 0.0}
        await self.planner.refuse_outside(preset, files)
        await self.planner.check_space(files)
        job = await self._queue(preset_id, priority, files)
        return self._install_answer(job)

    async def download_url(self, url: str, folder_type: str, filename: str | None = None,
                           subfolder: str | None = None, sha256: str | None = None, priority: str = "normal",
                           force: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Queue one model from a URL (POST /api/models/download): to `<type>/<subfolder/>filename`.

        Refused before anything is queued: INVALID_REQUEST naming `url`, `type`, `filename` or
        `subfolder`; MODEL_EXISTS when a file is at the path (unless `force`: it is replaced once the
        new one is verified); DOWNLOAD_FAILED when the source refuses or lacks the file. A URL for a
        path that is downloading already answers that download. With `dry_run` every check runs and
        the source is asked the same way, but nothing is queued or written: the answer is
        `{path, size_bytes, size_gb, source, exists, license}`.
        """
        task = await self.url_task(url, folder_type, filename, subfolder, sha256)
        async with self._installing:
            job = None if dry_run else self.active_job(task.path)
            if job is not None:
                if job.status == JobStatus.PAUSED:
                    await self.resume(job.id)
                return self._url_answer(job, task.path)
            target = self.planner.target(task.path)
            exists = await self.threads.run(target.exists)
            if exists and not force:
                raise ModelExists(f"{task.path} already exists; use force to replace it",
                                  {"path": task.path, "hint": "use force to replace it"})
            await self.planner.check_space([task])
            if dry_run:
                return {"path": task.path, "size_bytes": task.size, "size_gb": gb(task.size),
                        "source": task.spec["source"], "exists": exists,
                        "license": await urls.license_of(task.spec["source"], self.tokens, self._session,
                                                         self.threads)}
            if exists:
                await self.threads.run(remove_record, target)  # the new file, once verified, gets its own
                self.installed.pop(task.path, None)
            job = await self._queue(None, priority, [task])
        return self._url_answer(job, task.path)

    async def url_task(self, url: str, folder_type: str, filename: str | None = None, subfolder: str | None = None,
                       sha256: str | None = None) -> FileTask:
        """The file task for a model URL saved as `<type>/<subfolder/>filename`, its source asked once;
        INVALID_REQUEST naming the field, or the DownloadFailed the source answers. Queues nothing."""
        folder_type = self.index.require_type(folder_type)
        relfolder = urls.check_subfolder(subfolder)
        if filename is not None:
            filename = urls.check_filename(filename, given=True)
        source, spec, resolved, filename = await urls.locate(url, filename, sha256, self.tokens, self._session,
                                                             self.threads, self.download_hosts)
        path = "/".join(filter(None, [folder_type, relfolder, filename]))
        outside = await self.threads.run(self.planner.outside, {path: self.planner.target(path)})
        if outside:
            raise invalid(f"{path} would be written outside the model folders: {outside[path]}",
                          field="subfolder", path=path)
        size = resolved.size or spec.get("size") or 0
        record_source = {**source.source, **({"commit": resolved.commit} if resolved.commit else {})}
        return FileTask(path, {**spec, "path": path, "size": size, "source": record_source}, size)

    async def queue_files(self, files: list[FileTask], priority: str = "normal") -> Job:
        """One job for `files` (no preset), after the checks every install makes: outside the model
        folders (INVALID_REQUEST) and free space (INSUFFICIENT_STORAGE)."""
        targets = {f.path: self.planner.target(f.path) for f in files}
        outside = await self.threads.run(self.planner.outside, targets)
        if outside:
            raise invalid(f"{', '.join(outside)} would be written outside the model folders, through a symlink; "
                          "nothing was downloaded", paths=list(outside))
        await self.planner.check_space(files)
        async with self._installing:
            return await self._queue(None, priority, files)

    def active_job(self, path: str) -> Job | None:
        """The queued, running or paused job that downloads `path`, if any."""
        return next((job for job in self.jobs.values()
                     if job.status in ACTIVE and any(f.path == path for f in job.files)), None)

    def _url_answer(self, job: Job, path: str) -> dict[str, Any]:
        return {"download_id": job.id, "path": path, "status": job.status.value,
                "source": job.files[0].spec.get("source"),
                "estimated_time_seconds": self._estimate(job), "total_size_gb": gb(job.total_bytes)}

    async def _queue(self, preset_id: str | None, priority: str, files: list[FileTask]) -> Job:
        job = Job(f"dl_{secrets.token_hex(6)}", preset_id, PRIORITIES[priority], time.time(), files)
        await self.store.create_download(  # a URL download has no preset: "" in the database
            {"id": job.id, "preset_id": preset_id or "", "status": job.status, "priority": job.priority,
             "created_at": job.created_at},
            [{"path": f.path, "spec": f.spec, "size": f.size, "status": f.status} for f in files])
        self.jobs[job.id] = job
        self._pump()
        self._publish_progress(job, force=True)
        return job

    async def pause(self, download_id: str) -> dict[str, Any]:
        job = self._require(download_id)
        if job.status not in RUNNABLE:
            raise self._conflict(job, "pause")
        job.pause()
        await self.store.update_download(job.id, status=job.status)
        await self._stop_files(job)
        self._publish_progress(job, force=True)
        return {"status": "paused", "download_id": job.id}

    async def resume(self, download_id: str) -> dict[str, Any]:
        job = self._require(download_id)
        if job.status not in (JobStatus.PAUSED, JobStatus.FAILED):
            raise self._conflict(job, "resume")
        for f in job.resume():
            await self.store.update_file(job.id, f.path, status=f.status, error=None)
        await self.store.update_download(job.id, status=job.status, error=None)
        self._pump()
        return {"status": "downloading", "download_id": job.id}

    async def cancel(self, download_id: str) -> dict[str, Any]:
        job = self._require(download_id)
        if job.status not in (*ACTIVE, JobStatus.FAILED):
            raise self._conflict(job, "cancel")
        job.cancel()
        await self.store.update_download(job.id, status=job.status)
        await self._stop_files(job)
        unfinished = {f.path: self.planner.target(f.path) for f in job.files if f.status != FileStatus.DONE}

        def remove() -> None:
            outside = self.planner.outside(unfinished)
            for path, target in unfinished.items():
                lock = PartLock(target)
                if path not in outside and lock.try_acquire():  # never a .part another process writes
                    remove_partial(target)
                    lock.release()

        await self.threads.run(remove)
        self._complete_event(job, "cancelled")
        return {"status": "cancelled", "download_id": job.id, "files_removed": True}

    async def set_priority(self, download_id: str, priority: str) -> dict[str, Any]:
        job = self._require(download_id)
        job.reprioritize(PRIORITIES[priority])
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
        if not force:
            await self.uninstaller.check_in_use(preset)
        for job in list(self.jobs.values()):
            if job.preset_id == preset_id and job.status in ACTIVE:
                await self.cancel(job.id)
        return await self.uninstaller.uninstall(preset)

    async def verify(self, paths: list[str] | None = None, preset_id: str | None = None) -> dict[str, Any]:
        """Hash files again against what was verified (POST /api/models/verify): `paths`, or a preset's files."""
        if (paths is None) == (preset_id is None):
            raise invalid("Give either 'paths' (model files) or 'preset_id'", field="paths")
        if preset_id is not None:
            await self.presets.refresh()
            preset = self.presets.require(preset_id)
            await self.index.refresh(force=True)
            paths = [f.path for f in preset.files if self.index.get(f.path) is not None]
        paths = list(dict.fromkeys(paths))
        unknown = [path for path in paths if self.index.default_root(path.partition("/")[0]) is None]
        if unknown:
            raise ModelNotFound(f"No model folder for {unknown[0]!r}", {"path": unknown[0]})
        targets = {path: self.planner.target(path) for path in paths}
        outside = await self.threads.run(self.planner.outside, targets)
        if outside:
            raise invalid(f"Not a model file inside the model folders: {', '.join(outside)}", paths=list(outside))
        return await verify_files(paths, targets, self.installed)

    def settings(self) -> dict[str, Any]:
        """The limits all downloads share (GET /api/downloads/settings)."""
        return self.limits.snapshot()

    async def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change limits while downloads run (PUT /api/downloads/settings); `changes` are validated."""
        answer = self.limits.update(changes)
        self.bus.publish("download_settings", answer, "downloads")
        return answer

    # queries

    def list(self) -> dict[str, Any]:
        jobs = sorted(self.jobs.values(), key=lambda j: (j.status not in ACTIVE, j.priority, j.created_at))
        return {"downloads": [j.summary() for j in jobs],
                "active": sum(j.status in RUNNABLE for j in jobs), "total": len(jobs),
                "yielding": self.limits.yielding}

    def get(self, download_id: str) -> dict[str, Any]:
        return self._require(download_id).summary()

    def preset_progress(self, preset_id: str) -> dict[str, Any] | None:
        """Live progress of a preset's active or failed job, for GET /api/presets/{id}/status."""
        jobs = [j for j in self.jobs.values()
                if j.preset_id == preset_id and j.status in (*ACTIVE, JobStatus.FAILED)]
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
                "estimated_time_seconds": self._estimate(job), "total_size_gb": gb(job.total_bytes)}

    def _estimate(self, job: Job) -> int | None:
        """Seconds left: at the job's own speed while it runs, else at the last measured throughput."""
        eta = job.summary()["eta_seconds"]
        if eta is None and self.throughput > 0:
            eta = int(max(0, job.total_bytes - job.done_bytes) / self.throughput)
        return eta

    def _require(self, download_id: str) -> Job:
        job = self.jobs.get(download_id)
        if job is None:
            raise DownloadNotFound(f"No download with id {download_id!r}", {"download_id": download_id})
        return job

    @staticmethod
    def _conflict(job: Job, action: str) -> DownloadConflict:
        return DownloadConflict(f"Cannot {action} a download that is {job.status}",
                                {"download_id": job.id, "status": job.status})

    def _measure_parts(self) -> None:
        for job in self.jobs.values():
            if job.status not in ACTIVE:
                continue
            for f in job.files:
                if f.status == FileStatus.PENDING:
                    with contextlib.suppress(OSError, DashboardError):
                        f.measured(bytes_held(self.planner.target(f.path)))

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
                if f.status == FileStatus.PENDING and f.path not in busy:
                    busy.add(f.path)
                    job.start_file(f)  # the job's new status is persisted by _run_file
                    self._running[(job.id, f.path)] = asyncio.create_task(self._run_file(job, f))

    async def _run_file(self, job: Job, f: FileTask) -> None:
        try:
            await self.store.update_download(job.id, status=job.status)
            await self.store.update_file(job.id, f.path, status=FileStatus.DOWNLOADING)
            await self.index.refresh(force=True)
            if not self.planner.verified(preset_file(f)):
                target = self.planner.target(f.path)
                outside = await self.threads.run(self.planner.outside, {f.path: target})
                if outside:
                    raise OutsideModelFolders(f"{f.path} is not written: {outside[f.path]}")
                installed_at = time.time()
                source = file_source(f.spec)
                owner = f.spec.get("preset_id") or job.preset_id  # an update keeps the file's preset
                result = await self.transfer.fetch(
                    target, f.spec, lambda done, total, connections: self._progress(job, f, done, total, connections),
                    {"preset_id": owner, "installed_at": installed_at, "source": source})
                record = {"path": f.path, "size": result.size, "sha256": result.sha256, "etag": result.etag,
                          "commit_hash": result.commit, "preset_id": owner, "installed_at": installed_at,
                          "source": source}
                self.installed[f.path] = {**record, "mtime_ns": result.mtime_ns}
                self.index.invalidate()
                self.forget_folder(f.path.partition("/")[0])  # loader lists show the file without a restart
                await self.store.record_installed(record)
            f.finish()
            await self.store.update_file(job.id, f.path, status=f.status, size=f.size)
        except asyncio.CancelledError:
            f.stop()
            raise
        except DashboardError as exc:
            await self._fail(job, f, exc)
        except (sqlite3.Error, OSError) as exc:  # the database or a record could not be written
            await self._fail(job, f, storage_failure(exc, self.store.path))
        except Exception as exc:
            log.exception("Download of %s failed", f.path)
            await self._fail(job, f, DownloadFailed(f"Unexpected error: {exc.__class__.__name__}",
                                                    {"file": f.path}))
        finally:
            self._running.pop((job.id, f.path), None)
            f.stop()
            with contextlib.suppress(RuntimeError):
                await self._after_file(job)

    async def _after_file(self, job: Job) -> None:
        if job.status in RUNNABLE and all(f.status == FileStatus.DONE for f in job.files):
            job.finish()  # the files are in place and their records beside them
            await self._persist(self.store.update_download(job.id, status=job.status, finished_at=job.finished_at))
            self._publish_progress(job, force=True)
            self._complete_event(job, "success")
        self._pump()

    async def _fail(self, job: Job, f: FileTask, error: DashboardError) -> None:
        """A file failed: so does its job, in memory and events even when the database cannot be written."""
        f.fail(error.to_dict()["error"])
        await self._persist(self.store.update_file(job.id, f.path, status=f.status, error=f.error))
        if job.status not in RUNNABLE:
            return
        job.fail({**f.error, "details": _failure_details(f.path, error)})
        await self._persist(self.store.update_download(job.id, status=job.status, error=job.error))
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

    async def _persist(self, write: Awaitable[None]) -> None:
        """A store write whose failure is logged, not raised (on the way to reporting another failure)."""
        try:
            await write
        except sqlite3.Error as exc:
            log.warning("Could not write the download state to %s: %s", self.store.path, exc)

    def _progress(self, job: Job, f: FileTask, done: int, total: int | None, connections: int) -> None:
        speed = job.progressed(f, done, total, connections)
        if speed is not None:
            self.throughput = speed
        self._publish_progress(job)

    def _publish_progress(self, job: Job, force: bool = False) -> None:
        if not job.event_due(EVENT_INTERVAL, force):
            return
        s = job.summary()
        self.bus.publish("download_progress", {
            "download_id": job.id, "preset_id": job.preset_id, "status": job.status, "progress": s["progress"],
            "current_file": s["current_file"],
            "speed": human_rate(job.speed if job.status == JobStatus.DOWNLOADING else 0),
            "eta": human_duration(s["eta_seconds"]), "files": {"total": s["files"]["total"],
                                                              "completed": s["files"]["completed"]},
            "connections": s["connections"], "yielding": self.limits.yielding,
        }, "downloads")

    def _on_event(self, event: Event) -> None:
        """Downloads yield while ComfyUI runs a prompt."""
        if event.type == "queue_update":
            was = self.limits.yielding
            self.limits.set_generating(bool(event.data.get("queue_running")))
            if self.limits.yielding != was:
                self.bus.publish("download_settings", self.limits.snapshot(), "downloads")

    def _complete_event(self, job: Job, status: str) -> None:
        self.bus.publish("download_complete", {
            "download_id": job.id, "preset_id": job.preset_id, "status": status,
            "paths": [f.path for f in job.files],
            "time_taken_seconds": int((job.finished_at or time.time()) - job.created_at),
        }, "downloads")


def storage_failure(exc: BaseException, database: Path) -> DashboardError:
    """The error for a write of the download state that failed: a full disk is INSUFFICIENT_STORAGE."""
    full = getattr(exc, "errno", None) == errno.ENOSPC or "full" in str(exc).lower()
    if full:
        return InsufficientStorage("The disk is full: the download state could not be written; "
                                   "free some space and resume", {"reason": "disk_full", "database": str(database)})
    return InternalError(f"The download state could not be written: {exc}",
                         {"reason": "storage_error", "database": str(database)})


def _failure_details(path: str, error: DashboardError) -> dict[str, Any]:
    """A failed file's error details as the API words them: `file` is its model-folder path and
    `error` the reason; a repository's own name for the file is kept as `repo_file`."""
    details = {**error.details, "file": path, "error": error.message}
    if "repo" in error.details and error.details.get("file") not in (None, path):
        details["repo_file"] = error.details["file"]
    return details
