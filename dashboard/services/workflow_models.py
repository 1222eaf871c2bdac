"""What a workflow needs: the model files it loads, which are missing, and installing those.

A workflow comes as the editor saves it (UI format) or in the API format; `workflow_format` reads
the files it loads. Each missing file is installed from a preset that lists the same path when one
does (the preset's source, size and hash), else from the URL the workflow declares for it, through
the rules of `POST /api/models/download` (the file is saved under the name the workflow loads).
Asking a URL's source (its size, whether it refuses) is cached for a few minutes, so opening the
same workflow again does not ask again.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import DashboardError, invalid
from .downloads.jobs import FileTask
from .downloads.manager import DownloadManager
from .downloads.planner import file_spec
from .preset_schema import Preset, PresetFile
from .presets import PresetService
from .workflow_format import required_models, workflow_format

#: How long what a URL's source answered is reused.
SOURCE_TTL = 300.0
#: At most this many sources asked at once for one workflow.
_ASKING = 4


@dataclass
class _Assessment:
    """A workflow's files as the API answers them, with the task and error behind each missing one."""

    answer: dict[str, Any]
    tasks: dict[str, FileTask] = field(default_factory=dict)
    errors: dict[str, DashboardError] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)  # Hub repositories of gated presets the tasks come from


class WorkflowModels:
    """Answers POST /api/workflows/requirements and /install-missing."""

    def __init__(self, presets: PresetService, downloads: DownloadManager) -> None:
        self.presets = presets
        self.downloads = downloads
        self._sources: dict[tuple[str, str], tuple[float, FileTask]] = {}  # (url, path) -> when, task

    async def requirements(self, workflow: Any) -> dict[str, Any]:
        """`{format, files: [{path, type, name, nodes, installed, url, presets, size, source, installable,
        download_id, error}], missing, missing_bytes, installable}`; INVALID_WORKFLOW for anything else."""
        return (await self._assess(workflow)).answer

    async def install_missing(self, workflow: Any, priority: str = "normal", dry_run: bool = False
                              ) -> dict[str, Any]:
        """Queue one job for the missing files that can be installed: `{status, download_id, files,
        bytes_to_download, unavailable, downloading}`; nothing left to start is `installed` (or
        `downloading`, the job already fetching them); with `dry_run`, the plan. Files that cannot be
        installed are listed in `unavailable`; when no file can, the first one's error is raised."""
        assessed = await self._assess(workflow)
        files = assessed.answer["files"]
        downloading = [{"path": f["path"], "download_id": f["download_id"]} for f in files if f["download_id"]]
        busy = {d["path"] for d in downloading}
        tasks = [t for path, t in assessed.tasks.items() if path not in busy]
        unavailable = [{"path": f["path"], "error": f["error"]} for f in files
                       if not f["installed"] and not f["installable"]]
        extra = {"unavailable": unavailable, "downloading": downloading}
        if dry_run:
            return {**await self.downloads.plans.compose(tasks, sorted(assessed.gated)), **extra}
        if not tasks:
            if unavailable and not downloading:
                first = unavailable[0]["path"]
                raise assessed.errors.get(first) or _no_source(first)
            status = "downloading" if downloading else "installed"
            return {"status": status, "download_id": downloading[0]["download_id"] if downloading else None,
                         "files": [], "bytes_to_download": 0, **extra}
        job = await self.downloads.queue_files(tasks, priority)
        return {"status": job.status.value, "download_id": job.id, "files": [t.path for t in tasks],
                     "bytes_to_download": job.total_bytes, **extra}

    async def _assess(self, workflow: Any) -> _Assessment:
        fmt = workflow_format(workflow)
        models = required_models(workflow, fmt)
        await self.presets.refresh()
        index = self.presets.index
        providers: dict[str, list[tuple[Preset, PresetFile]]] = {}
        for preset in self.presets.catalogue.presets.values():
            if preset.missing_folders:
                continue  # made for a newer ComfyUI: it cannot install anything here
            for f in preset.files:
                providers.setdefault(f.path, []).append((preset, f))
        assessed = _Assessment({})
        asking: list[tuple[dict[str, Any], str]] = []
        for model in models:
            path = model["path"]
            offered = sorted(providers.get(path, []), key=lambda pf: (pf[0].source == "template", pf[0].id))
            found = index.get(path)
            job = self.downloads.active_job(path)
            model.update(installed=found is not None and found.size > 0, presets=[p.id for p, _f in offered],
                         size=found.size if found is not None else None, source=None, installable=False,
                         download_id=job.id if job is not None else None, error=None)
            if model["installed"]:
                continue
            curated = next(((p, f) for p, f in offered if p.source != "template"), None)
            if model["type"] not in index.roots:
                assessed.errors[path] = invalid(f"{path}: this ComfyUI has no model folder {model['type']!r}",
                                                field="workflow", path=path)
            elif curated is not None:
                preset, f = curated
                model.update(url=self.presets.file_url(f), size=f.size, source="preset", installable=True)
                assessed.tasks[path] = FileTask(path, file_spec(f), f.size)
                if preset.gated and f.repo:
                    assessed.gated.add(f.repo)
            elif model["url"] or offered:
                model["url"] = model["url"] or self.presets.file_url(offered[0][1])
                asking.append((model, model["url"]))
        semaphore = asyncio.Semaphore(_ASKING)
        await asyncio.gather(*(self._ask(model, url, assessed, semaphore) for model, url in asking))
        for model in models:
            error = assessed.errors.get(model["path"])
            if error is not None:
                model["error"] = error.to_dict()["error"]
        missing = [m for m in models if not m["installed"]]
        assessed.answer = {
            "format": fmt, "files": models, "missing": [m["path"] for m in missing],
            "missing_bytes": sum(m["size"] or 0 for m in missing),
            "installable": [m["path"] for m in missing if m["installable"]],
        }
        return assessed

    async def _ask(self, model: dict[str, Any], url: str, assessed: _Assessment, semaphore: asyncio.Semaphore) -> None:
        """Ask the source of a declared URL what it serves; the file is saved under the workflow's name."""
        path = model["path"]
        key = (url, path)
        cached = self._sources.get(key)
        if cached is not None and time.monotonic() - cached[0] < SOURCE_TTL:
            task = cached[1]
        else:
            subfolder, filename = posixpath.split(model["name"])
            try:
                async with semaphore:
                    task = await self.downloads.url_task(url, model["type"], filename, subfolder or None)
            except DashboardError as exc:
                assessed.errors[path] = exc
                return
            if len(self._sources) > 1000:  # drop what is stale, so the cache stays small
                now = time.monotonic()
                self._sources = {k: v for k, v in self._sources.items() if now - v[0] < SOURCE_TTL}
            self._sources[key] = (time.monotonic(), task)
        model.update(size=task.size or None, source="url", installable=True)
        assessed.tasks[path] = task


def _no_source(path: str) -> DashboardError:
    return invalid(f"{path} cannot be installed: the workflow declares no URL for it and no preset provides it",
                   field="workflow", path=path)
