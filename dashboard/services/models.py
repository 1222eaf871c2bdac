"""The model inventory as users see it: list, count, size and delete model files.

Reads the ModelIndex (the cached, incrementally refreshed scan). Everything that costs time per
file (sorting, filtering, summing, formatting, deleting) runs off the event loop, and what it
assembles is cached per index version, so repeating a listing touches neither the disk nor more
than one page of entries. `delete` hands on to `model_delete.ModelDeleter`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..comfy.backend import ComfyBackend
from ..comfy.extra_paths import add_extra_paths, load_extra_model_paths
from ..comfy.folders import FOLDER_TYPES, standalone_roots
from ..threads import LOOP_DEFAULT, Threads
from .downloads.records import source_of
from .model_delete import ModelDeleter
from .model_index import MODIFIED, RELPATH, SIZE, TYPE, ModelIndex, Row
from .preset_schema import Preset
from .presets import PresetService
from .sizes import gb, iso_utc
from .system import SystemMonitor

if TYPE_CHECKING:
    from .library.service import Library

SORTS = ("path", "name", "size", "modified", "last_used")
_DAY = 86400
_VIEWS_KEPT = 32


def standalone_model_roots(models_dir: Path, extra_yaml: Path | None = None) -> dict[str, list[Path]]:
    """The standalone server's model folders: the models dir's, plus those of an extra_model_paths.yaml.

    Blocking (reads the yaml); raises ConfigError when the yaml is malformed.
    """
    roots = standalone_roots(models_dir)
    return add_extra_paths(roots, load_extra_model_paths(extra_yaml)) if extra_yaml else roots


def display_name(folder_type: str) -> str:
    """"LoRAs" for loras; a type only ComfyUI (or a custom node) knows gets its name title-cased."""
    return FOLDER_TYPES.get(folder_type) or folder_type.replace("_", " ").title()


class TypeTotal(NamedTuple):
    """How many model files of one folder type there are, and their bytes."""

    count: int
    size: int


NO_FILES = TypeTotal(0, 0)


@dataclass
class _Inventory:
    """One index version: every path in order, summed by type; built off the loop. Views (filtered,
    sorted path lists) and JSON entries are made on demand and kept, from any thread."""

    version: int
    rows: Mapping[str, Row]
    paths: list[str]  # sorted
    total_bytes: int
    by_type: dict[str, TypeTotal] | None = None  # see type_totals()
    views: OrderedDict = field(default_factory=OrderedDict)  # query key -> (paths, bytes)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> JSON without `preset`
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, version: int, rows: Mapping[str, Row]) -> _Inventory:
        return cls(version, rows, sorted(rows), sum(row[SIZE] for row in rows.values()))

    def type_totals(self) -> dict[str, TypeTotal]:
        """Folder type -> its files' count and bytes; made on first use (a listing does not need it)."""
        if self.by_type is None:
            counts: dict[str, int] = {}
            sizes: dict[str, int] = {}
            for folder_type, _relpath, _root, size, _modified in self.rows.values():
                counts[folder_type] = counts.get(folder_type, 0) + 1
                sizes[folder_type] = sizes.get(folder_type, 0) + size
            self.by_type = {t: TypeTotal(counts[t], sizes[t]) for t in counts}
        return self.by_type

    def view(self, folder_type: str | None, search: str | None, sort: str, descending: bool) -> tuple[list, int]:
        """The paths that match, in the asked order, and their total size (cached per query)."""
        key = (folder_type, search, sort, descending)
        with self.lock:
            found = self.views.get(key)
            if found is not None:
                self.views.move_to_end(key)
                return found
        rows, selected = self.rows, self.paths
        if folder_type is not None:
            selected = [p for p in selected if rows[p][TYPE] == folder_type]
        for word in search.lower().split() if search else ():
            selected = [p for p in selected if word in rows[p][RELPATH].lower()]
        if sort == "name":
            selected = sorted(selected, key=lambda p: (p.rsplit("/", 1)[-1].lower(), p), reverse=descending)
        elif sort in ("size", "modified"):
            column = SIZE if sort == "size" else MODIFIED
            selected = sorted(selected, key=lambda p: (rows[p][column], p), reverse=descending)
        elif descending:
            selected = selected[::-1]
        size = self.total_bytes if selected is self.paths else sum(rows[p][SIZE] for p in selected)
        found = (selected, size)
        with self.lock:
            self.views[key] = found
            while len(self.views) > _VIEWS_KEPT:
                self.views.popitem(last=False)
        return found

    def entry(self, path: str) -> dict[str, Any]:
        entry = self.entries.get(path)
        if entry is None:
            folder_type, _relpath, _root, size, modified = self.rows[path]
            entry = self.entries[path] = {"path": path, "type": folder_type, "size_gb": gb(size),
                                          "size_bytes": size, "modified": iso_utc(modified)}
        return entry


class ModelService:
    """GET/DELETE /api/models, GET /api/models/types and the models half of GET /api/system/storage."""

    def __init__(self, index: ModelIndex, presets: PresetService, backend: ComfyBackend,
                 system: SystemMonitor, threads: Threads = LOOP_DEFAULT) -> None:
        self.index = index
        self.threads = threads
        self.presets = presets
        self.backend = backend
        self.system = system
        self._inventory: _Inventory | None = None
        self._building: asyncio.Future | None = None
        self._files_by_preset: tuple[object, dict[str, list[Preset]]] = (None, {})
        self.deleter = ModelDeleter(index, backend, threads)
        #: path -> the verified record of a file the dashboard installed (the download manager's)
        self.installed: Mapping[str, dict[str, Any]] = {}
        #: The library (hashes, usage), once the store it reads is there.
        self.library: Library | None = None

    # reading

    async def list(self, folder_type: str | None = None, search: str | None = None, sort: str = "path",
                   order: str = "asc", limit: int = 1000, offset: int = 0, duplicates: bool = False,
                   unused_days: int | None = None) -> dict[str, Any]:
        """The body of GET /api/models. Raises INVALID_REQUEST for an unknown type.

        `duplicates`: only files whose hash another file has, group by group (the copy a cleanup
        keeps first), with the groups; `unused_days`: only files neither used by a prompt nor
        changed in that many days; `sort=last_used`: by the last prompt that used them."""
        if folder_type is not None:
            folder_type = self.index.require_type(folder_type)
        inventory = await self.inventory()
        owner = self._owner_lookup()
        library = self.library
        groups = (await library.duplicates())["groups"] if duplicates and library is not None else None
        hashes = library.hashes if library is not None else None
        usage = library.usage.of if library is not None else (lambda path: (None, 0))
        since = time.time() - unused_days * _DAY if unused_days is not None else None

        def page() -> tuple[list[dict[str, Any]], int, int]:
            view = "path" if sort == "last_used" else sort
            selected, size = inventory.view(folder_type, search or None, view, order == "desc")
            rows = inventory.rows
            if since is not None:
                selected = [p for p in selected if max(usage(p)[0] or 0, rows[p][MODIFIED]) < since]
            if sort == "last_used":
                selected = sorted(selected, key=lambda p: (usage(p)[0] or 0, p), reverse=order == "desc")
            if groups is not None:
                wanted = set(selected)
                selected = [f["path"] for g in groups for f in g["files"] if f["path"] in wanted]
            if selected is not inventory.paths:
                size = sum(rows[p][SIZE] for p in selected)
            models = []
            for p in selected[offset:offset + limit]:
                last_used, use_count = usage(p)
                models.append({**inventory.entry(p), "preset": owner(p), "source": source_of(self.installed.get(p)),
                               "sha256": hashes.sha256(p, rows[p][SIZE]) if hashes is not None else None,
                               "last_used": iso_utc(last_used) if last_used else None, "use_count": use_count})
            return models, len(selected), size

        models, total, total_bytes = await self.threads.run(page)
        body = {
            "models": models,
            "total": total,
            "total_size_gb": gb(total_bytes),
            "total_size_bytes": total_bytes,
            "offset": offset,
            "limit": limit,
            "problems": list(self.index.problems),
        }
        if groups is not None:
            body.update(groups=groups, reclaimable_bytes=sum(g["reclaimable_bytes"] for g in groups))
        return body

    async def types(self) -> dict[str, Any]:
        """The body of GET /api/models/types: every folder type, with 0 for empty ones."""
        inventory = await self.inventory()
        totals = await self.threads.run(inventory.type_totals)
        types = []
        for name in self.index.known_types():
            total = totals.get(name, NO_FILES)
            types.append({"id": name, "name": display_name(name), "count": total.count, "size_gb": gb(total.size),
                          "size_bytes": total.size})
        return {"types": types}

    async def storage(self) -> dict[str, Any]:
        """The body of GET /api/system/storage: the models volume and what the models take."""
        inventory = await self.inventory()
        totals = await self.threads.run(inventory.type_totals)
        return {
            "workspace": await self.system.disk_now(),
            "models": {
                "count": len(inventory.paths),
                "total_size_gb": gb(inventory.total_bytes),
                "total_size_bytes": inventory.total_bytes,
                "by_type": {name: totals.get(name, NO_FILES).count for name in self.index.known_types()},
            },
        }

    async def inventory(self) -> _Inventory:
        """The index as of now (refreshed if due), assembled once per index version."""
        await self.presets.refresh()  # the catalogue (for `preset`) and the model index
        while self._inventory is None or self._inventory.version != self.index.version:
            if self._building is None or self._building.done():
                version, rows = self.index.version, self.index.rows()
                self._building = asyncio.ensure_future(self.threads.run(_Inventory.build, version, rows))
            inventory = await asyncio.shield(self._building)
            if self._inventory is None or inventory.version > self._inventory.version:
                self._inventory = inventory
        return self._inventory

    def _owner_lookup(self):
        """path -> id of the first installed preset (by id) that has this file, or None."""
        presets = self.presets.catalogue.presets
        if self._files_by_preset[0] is not presets:
            by_path: dict[str, list[Preset]] = {}
            for preset in presets.values():  # sorted by id
                for f in preset.files:
                    by_path.setdefault(f.path, []).append(preset)
            self._files_by_preset = (presets, by_path)
        by_path = self._files_by_preset[1]
        installed: dict[str, bool] = {}

        def owner(path: str) -> str | None:
            for preset in by_path.get(path, ()):
                if preset.id not in installed:
                    installed[preset.id] = self.presets.is_installed(preset)
                if installed[preset.id]:
                    return preset.id
            return None

        return owner

    # deleting

    async def delete(self, paths: list[str], force: bool = False) -> dict[str, Any]:
        """The body of DELETE /api/models: delete what may be, and say why each other path was not.

        Paths are resolved on disk, not in the index, so a file the index has not seen yet is found.
        """
        return await self.deleter.delete(paths, force)

    async def in_use(self, paths: list[str]) -> list[str]:
        """Those of `paths` (`<type>/<relative path>`) that a queued or running prompt names."""
        return await self.deleter.in_use(paths)
