"""The plan before the first byte: what an install would download, where, whether it fits, and
whether the Hub lets the configured token in.

`GET /api/presets/{id}/plan` and `POST /api/workflows/install-missing?dry_run=true` answer the same
shape: `{files, dependencies, bytes_to_download, total_bytes, volumes, access, fits}`. Nothing is
queued or written; the only requests are the Hub's auth checks for gated repositories.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ...threads import Threads
from ..preset_schema import Preset
from ..presets import PresetService
from .access import check_access
from .jobs import FileTask
from .planner import Planner, file_source
from .sources import Tokens
from .transfer import bytes_held, part_paths


class Plans:
    """Builds plans from the planner's view of the model folders."""

    def __init__(self, planner: Planner, presets: PresetService, tokens: Tokens, threads: Threads) -> None:
        self.planner = planner
        self.presets = presets
        self.tokens = tokens
        self.threads = threads

    async def preset(self, preset_id: str) -> dict[str, Any]:
        """The plan of installing a preset (the body of GET /api/presets/{id}/plan)."""
        await self.presets.refresh()
        preset = self.presets.require(preset_id)
        await self.planner.index.refresh(force=True)
        members = self.presets.with_dependencies(preset)
        tasks = self.planner.missing_files(preset, force=False)
        owner: dict[str, Preset] = {}
        for p in members:
            for f in p.files:
                owner.setdefault(f.path, p)
        gated = sorted({t.spec["repo"] for t in tasks if t.spec.get("repo") and owner[t.path].gated})
        plan = await self.compose(tasks, gated)
        fetch = {f["path"]: f for f in plan["files"]}
        files = []
        for path, p in owner.items():
            f = next(f for f in p.files if f.path == path)
            model = self.planner.index.get(path)
            files.append({
                "path": path, "size_bytes": f.size, "preset_id": p.id, "optional": f.optional,
                "present": model is not None and model.size > 0, "verified": self.planner.verified(f),
                "download": path in fetch,
                "bytes_to_download": fetch[path]["bytes_to_download"] if path in fetch else 0,
                "shared_with": [q.id for q in self.presets.catalogue.presets.values()
                                if q.id != p.id and any(g.path == path for g in q.files)],
            })
        dependencies = [{"id": p.id, "name": p.name, "installed": self.presets.is_installed(p),
                         "bytes_to_download": sum(f["bytes_to_download"] for f in files if f["preset_id"] == p.id)}
                        for p in members if p is not preset]
        return {"preset_id": preset.id, "name": preset.name, **plan, "files": files, "dependencies": dependencies,
                "total_bytes": sum(f["size_bytes"] for f in files if not f["optional"])}

    async def compose(self, tasks: list[FileTask], gated_repos: list[str]) -> dict[str, Any]:
        """The plan of downloading `tasks`: each with the bytes still to fetch (a `.part` counts as
        held), the volumes they go to, and access to `gated_repos`."""
        targets = {t.path: self.planner.target(t.path) for t in tasks}

        def held() -> dict[str, int]:
            have = {}
            for path, target in targets.items():
                have[path] = 0
                with contextlib.suppress(OSError):
                    if part_paths(target)[0].exists():
                        have[path] = bytes_held(target)
            return have

        have = await self.threads.run(held)
        files = [{"path": t.path, "size_bytes": t.size, "bytes_to_download": max(0, t.size - have[t.path]),
                  "source": file_source(t.spec)} for t in tasks]
        volumes = await self.planner.volumes(tasks) if tasks else []
        if gated_repos:
            access = await check_access(gated_repos, self.tokens, self.threads)
        else:
            access = {"ok": True, "hf_token": bool(self.tokens.hf_token), "repos": []}
        return {"files": files, "dependencies": [], "bytes_to_download": sum(f["bytes_to_download"] for f in files),
                "total_bytes": sum(t.size for t in tasks), "volumes": volumes, "access": access,
                "fits": all(v["fits"] for v in volumes)}

