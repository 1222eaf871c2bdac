"""What installing a preset means on disk: which files are missing, where each goes, whether it fits.

`Planner.verified` is the one place that decides whether a file on disk is the one the dashboard
downloaded and checked. Nothing is written or deleted outside the model folders: a file whose
real location is outside them (through a symlinked folder inside them) is refused, by the rule
`DELETE /api/models` applies.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ...errors import DownloadFailed, InsufficientStorage, invalid
from ...threads import LOOP_DEFAULT, Threads
from ..model_delete import outside_model_folders, real_model_roots
from ..model_index import ModelIndex
from ..preset_schema import Preset, PresetFile
from ..presets import PresetService
from ..sizes import gb
from .jobs import FileTask
from .records import vouches_for
from .transfer import DISK_MARGIN, bytes_held, part_paths


class Planner:
    """Turns presets into file tasks and checks them against the model folders."""

    def __init__(self, presets: PresetService, index: ModelIndex, installed: dict[str, dict[str, Any]],
                 threads: Threads = LOOP_DEFAULT) -> None:
        self.presets = presets
        self.threads = threads
        self.index = index
        self.installed = installed  # model-folder path -> the verified record the store keeps

    def verified(self, f: PresetFile) -> bool:
        """Whether `f` is on disk as the dashboard downloaded and verified it (same size, mtime and hash)."""
        model = self.index.get(f.path)
        return model is not None and vouches_for(self.installed.get(f.path), model.size, model.modified, f.sha256)

    def missing_files(self, preset: Preset, force: bool) -> list[FileTask]:
        """The files to fetch for `preset`, its dependencies' first. A file the user put there
        themselves is trusted unless `force`; a verified one is never fetched again, a damaged one
        (verified once, changed since) always."""
        tasks: dict[str, FileTask] = {}
        for p in self.presets.with_dependencies(preset):
            for f in p.files:
                if f.optional or f.path in tasks or self.verified(f):
                    continue
                model = self.index.get(f.path)
                ours = f.path in self.installed  # a file we verified that changed since is damaged: fetched again
                if not force and not ours and model is not None and model.size > 0:
                    continue
                tasks[f.path] = FileTask(f.path, file_spec(f), f.size)
        return list(tasks.values())

    def target(self, path: str) -> Path:
        """The absolute path a model-folder path is written to (the type's first folder)."""
        folder, _, relpath = path.partition("/")
        root = self.index.default_root(folder)
        if root is None:
            raise DownloadFailed(f"No model folder for {folder!r}", {"path": path})
        return root.joinpath(*relpath.split("/"))

    def outside(self, targets: dict[str, Path | str]) -> dict[str, str]:
        """path -> why writing or deleting its file would reach outside the model folders. Blocking."""
        real_roots = real_model_roots(self.index.roots)
        return {path: reason for path, target in targets.items()
                if (reason := outside_model_folders(target, real_roots)) is not None}

    async def refuse_outside(self, preset: Preset, files: list[FileTask]) -> None:
        """INVALID_REQUEST, before anything is queued, when a file would be written outside the model
        folders (through a symlinked folder inside them)."""
        targets = {f.path: self.target(f.path) for f in files}
        outside = await self.threads.run(self.outside, targets)
        if outside:
            raise invalid(f"{preset.name} cannot be installed: {', '.join(outside)} would be written outside the "
                          "model folders, through a symlink; nothing was downloaded",
                          preset_id=preset.id, paths=list(outside))

    async def volumes(self, files: list[FileTask]) -> list[dict[str, Any]]:
        """Per volume the files go to: `{path, free_bytes, needed_bytes, fits}`, where `needed_bytes`
        is what is still missing of them there (a `.part` counts as held) and `fits` leaves the
        safety margin free."""
        targets = [(self.target(f.path), f.size) for f in files]

        def measure() -> list[dict[str, Any]]:
            probes: dict[int, list[str]] = {}  # volume -> the existing folders on it the files go to
            needed: dict[int, int] = {}  # volume -> bytes still missing there
            for target, size in targets:
                probe = target.parent
                while not probe.exists():
                    probe = probe.parent
                have = bytes_held(target) if part_paths(target)[0].exists() else 0
                volume = probe.stat().st_dev
                probes.setdefault(volume, []).append(str(probe))
                needed[volume] = needed.get(volume, 0) + max(0, size - have)
            answer = []
            for volume, missing in needed.items():
                where = os.path.commonpath(probes[volume])  # the folder holding them all, e.g. the models folder
                free = shutil.disk_usage(where).free
                answer.append({"path": where, "free_bytes": free, "needed_bytes": missing,
                               "fits": free >= missing + DISK_MARGIN})
            return answer

        return await self.threads.run(measure)

    async def check_space(self, files: list[FileTask]) -> None:
        """INSUFFICIENT_STORAGE when a volume cannot hold what is still missing of `files`."""
        for volume in await self.volumes(files):
            if not volume["fits"]:
                raise InsufficientStorage("Not enough disk space for this download",
                                          {"needed_gb": gb(volume["needed_bytes"] + DISK_MARGIN),
                                           "free_gb": gb(volume["free_bytes"]), "path": volume["path"]})


def file_spec(f: PresetFile) -> dict[str, Any]:
    """What a file task keeps of a preset file (stored with the job)."""
    return {"path": f.path, "repo": f.repo, "repo_file": f.repo_file, "revision": f.revision, "url": f.url,
            "sha256": f.sha256, "size": f.size}


def preset_file(f: FileTask) -> PresetFile:
    """The preset file a stored file task stands for."""
    folder, _, relpath = f.path.partition("/")
    s = f.spec
    return PresetFile(folder, relpath, f.size, sha256=s.get("sha256"), repo=s.get("repo"),
                      repo_file=s.get("repo_file"), revision=s.get("revision") or "main", url=s.get("url"))


def file_source(spec: dict[str, Any]) -> dict[str, Any]:
    """Where a file task's bytes come from, as its record says: a URL download's own description,
    else the preset file's repository or URL."""
    if spec.get("source"):
        return spec["source"]
    kind = "huggingface" if spec.get("repo") else "url"
    return {"kind": kind, **{k: spec.get(k) for k in ("repo", "repo_file", "revision", "url")}}
