"""Uninstalling a preset: its files go, except those another installed preset uses."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ...errors import ModelInUse
from ...store import Store
from ...threads import LOOP_DEFAULT, Threads
from ..model_index import ModelFile
from ..preset_schema import Preset
from ..sizes import gb
from .planner import Planner
from .records import remove_record

log = logging.getLogger("dashboard.downloads")


class Uninstaller:
    """Removes a preset's files and forgets their verified records."""

    def __init__(self, planner: Planner, store: Store, forget_folder: Callable[[str], None],
                 in_use: Callable[[list[str]], Awaitable[list[str]]] | None, threads: Threads = LOOP_DEFAULT) -> None:
        self.planner = planner
        self.threads = threads
        self.store = store
        self.forget_folder = forget_folder  # ComfyUI's file-list cache, after files are deleted
        self.in_use = in_use  # which model paths a queued or running prompt names

    async def check_in_use(self, preset: Preset) -> None:
        """MODEL_IN_USE when a queued or running prompt names one of the files uninstalling would remove."""
        if self.in_use is None:
            return
        used = await self.in_use([m.path for m in await self.removable(preset)])
        if used:
            raise ModelInUse(f"A queued or running prompt uses {len(used)} of {preset.name}'s "
                             "files; use force to uninstall it anyway", {"preset_id": preset.id, "paths": used})

    async def uninstall(self, preset: Preset) -> dict[str, Any]:
        """Delete the preset's removable files (never through a symlink out of the model folders)."""
        doomed = await self.removable(preset)

        def delete() -> tuple[int, int, dict[str, str]]:
            removed = freed = 0
            outside = self.planner.outside({m.path: m.abspath for m in doomed})
            for model in doomed:
                if model.path in outside:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.remove(model.abspath)
                    remove_record(Path(model.abspath))
                    removed += 1
                    freed += model.size
            return removed, freed, outside

        removed, freed, outside = await self.threads.run(delete)
        if outside:
            log.warning("Uninstalling %s kept %d file(s) outside the model folders: %s", preset.id, len(outside),
                        ", ".join(outside))
        paths = [m.path for m in doomed if m.path not in outside]
        await self.store.forget_installed(paths)
        for path in paths:
            self.planner.installed.pop(path, None)
        self.planner.index.invalidate()
        for folder in {m.type for m in doomed}:
            self.forget_folder(folder)
        errors = [{"path": path, "code": "INVALID_REQUEST", "message": reason} for path, reason in outside.items()]
        return {"status": "uninstalled", "preset_id": preset.id, "files_removed": removed,
                "space_freed_gb": gb(freed), "space_freed_bytes": freed, "errors": errors}

    async def removable(self, preset: Preset) -> list[ModelFile]:
        """The preset's files on disk that no other installed preset uses."""
        models, presets = self.planner.index, self.planner.presets
        await models.refresh(force=True)
        kept = {f.path for p in presets.catalogue.presets.values()
                if p.id != preset.id and presets.is_installed(p) for f in p.files}
        found = [models.get(f.path) for f in preset.files if f.path not in kept]
        return [m for m in found if m is not None]
