"""The model inventory as users see it: list, count, size and delete model files.

Reads the ModelIndex (the cached, incrementally refreshed scan). Everything that costs time per
file (sorting, filtering, summing, formatting, deleting) runs off the event loop, and what it
assembles is cached per index version, so repeating a listing touches neither the disk nor more
than one page of entries.

Deleting is refused for anything that is not a model file inside the model folders: `..`, absolute
paths, folders, and symlinks whose target lies outside every model folder (checked on real paths,
`os.path.realpath`), so nothing outside the model folders is ever touched. A model that a queued or
running prompt refers to is kept unless `force` is given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..comfy.backend import ComfyBackend
from ..comfy.extra_paths import add_extra_paths, load_extra_model_paths
from ..comfy.folders import FOLDER_TYPES, MODEL_EXTENSIONS, canonical_type, standalone_roots
from ..errors import (
    ComfyUIUnavailable,
    DashboardError,
    Forbidden,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    invalid,
)
from ..threads import LOOP_DEFAULT, Threads
from .downloads.records import remove_record
from .model_index import MODIFIED, PARTIAL_SUFFIXES, RELPATH, SIZE, TYPE, ModelIndex, Row
from .preset_schema import Preset
from .presets import PresetService
from .sizes import gb, iso_utc
from .system import SystemMonitor

log = logging.getLogger("dashboard.models")

SORTS = ("path", "name", "size", "modified")
_VIEWS_KEPT = 32


def standalone_model_roots(models_dir: Path, extra_yaml: Path | None = None) -> dict[str, list[Path]]:
    """The standalone server's model folders: the models dir's, plus those of an extra_model_paths.yaml.

    Blocking (reads the yaml); raises ConfigError when the yaml is malformed.
    """
    roots = standalone_roots(models_dir)
    return add_extra_paths(roots, load_extra_model_paths(extra_yaml)) if extra_yaml else roots


def real_model_roots(roots: Mapping[str, Iterable[Path]]) -> set[str]:
    """The real paths (symlinks resolved) of every model folder, for `outside_model_folders`. Blocking."""
    return {os.path.realpath(root) for paths in roots.values() for root in paths}


def outside_model_folders(candidate: str | Path, real_roots: set[str]) -> str | None:
    """Why writing or deleting the file at `candidate` would touch something outside the model
    folders, or None: its folder's real path, or a symlink's real target, lies outside every real
    root. Whatever writes or deletes a model file checks this first. Blocking."""
    if not _inside(os.path.realpath(os.path.dirname(candidate)), real_roots):
        return "The path leads outside the model folders; refused"
    if os.path.islink(candidate) and not _inside(os.path.realpath(candidate), real_roots):
        return "A symlink to a file outside the model folders; refused"
    return None


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


@dataclass(frozen=True)
class _Target:
    """A path that may be deleted: what to unlink, and what it frees."""

    requested: str  # as the client wrote it
    path: str  # `<type>/<relative path>`, legacy type names mapped
    folder_type: str
    relpath: str
    unlink: str
    size: int


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

    # reading

    async def list(self, folder_type: str | None = None, search: str | None = None, sort: str = "path",
                   order: str = "asc", limit: int = 1000, offset: int = 0) -> dict[str, Any]:
        """The body of GET /api/models. Raises INVALID_REQUEST for an unknown type."""
        if folder_type is not None:
            folder_type = self.require_type(folder_type)
        inventory = await self.inventory()
        owner = self._owner_lookup()

        def page() -> tuple[list[dict[str, Any]], int, int]:
            selected, size = inventory.view(folder_type, search or None, sort, order == "desc")
            models = [{**inventory.entry(p), "preset": owner(p)} for p in selected[offset:offset + limit]]
            return models, len(selected), size

        models, total, total_bytes = await self.threads.run(page)
        return {
            "models": models,
            "total": total,
            "total_size_gb": gb(total_bytes),
            "total_size_bytes": total_bytes,
            "offset": offset,
            "limit": limit,
            "problems": list(self.index.problems),
        }

    async def types(self) -> dict[str, Any]:
        """The body of GET /api/models/types: every folder type, with 0 for empty ones."""
        inventory = await self.inventory()
        totals = await self.threads.run(inventory.type_totals)
        types = []
        for name in self.known_types():
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
                "by_type": {name: totals.get(name, NO_FILES).count for name in self.known_types()},
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

    def known_types(self) -> list[str]:
        """Every folder type with a folder: the standard ones in ComfyUI's order, then the rest by name."""
        names = self.index.roots
        return [n for n in FOLDER_TYPES if n in names] + sorted(n for n in names if n not in FOLDER_TYPES)

    def require_type(self, name: str) -> str:
        """The folder type for `name` (legacy names mapped), or INVALID_REQUEST listing the known ones."""
        if name in self.index.roots:
            return name
        canonical = canonical_type(name)
        if canonical in self.index.roots:
            return canonical
        known = self.known_types()
        raise invalid(f"Unknown model type {name!r}; known types: {', '.join(known)}", field="type",
                      value=name, known_types=known)

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
        requested = list(dict.fromkeys(paths))
        resolved = await self.threads.run(self._resolve_all, requested)
        errors: list[dict[str, str]] = []
        targets: list[_Target] = []
        for path, outcome in resolved:
            if isinstance(outcome, DashboardError):
                errors.append({"path": path, "code": outcome.code, "message": outcome.message})
            else:
                targets.append(outcome)
        if targets and not force:
            in_use = await self._names_in_use()
            for target in list(targets):
                if _named(target.path, target.relpath, in_use):
                    targets.remove(target)
                    errors.append({"path": target.requested, "code": "MODEL_IN_USE",
                                   "message": "A queued or running prompt uses this model; use force to delete it"})
        outcomes = await self.threads.run(_unlink_all, targets)
        deleted = [t for t, error in zip(targets, outcomes, strict=True) if error is None]
        errors.extend({"path": t.requested, "code": e.code, "message": e.message}
                      for t, e in zip(targets, outcomes, strict=True) if e is not None)
        if deleted:
            self.index.invalidate()
            for folder_type in dict.fromkeys(t.folder_type for t in deleted):
                self.backend.forget_model_folder(folder_type)
            log.info("Deleted %d model file(s): %s", len(deleted), ", ".join(t.path for t in deleted))
        order = {path: i for i, path in enumerate(requested)}
        freed = sum(t.size for t in deleted)
        return {
            "deleted": len(deleted),
            "space_freed_gb": gb(freed),
            "space_freed_bytes": freed,
            "errors": sorted(errors, key=lambda e: order[e["path"]]),
        }

    async def in_use(self, paths: list[str]) -> list[str]:
        """Those of `paths` (`<type>/<relative path>`) that a queued or running prompt names."""
        names = await self._names_in_use() if paths else set()
        return [path for path in paths if _named(path, path.split("/", 1)[-1], names)]

    async def _names_in_use(self) -> set[str]:
        """Every string input of every queued or running prompt (`\\` read as `/`)."""
        try:
            queue = await self.backend.queue()
        except ComfyUIUnavailable:
            return set()  # no ComfyUI, no queue: nothing is in use
        names: set[str] = set()
        for item in [*queue.get("running", []), *queue.get("pending", [])]:
            workflow = item.get("workflow") if isinstance(item, dict) else None
            for node in workflow.values() if isinstance(workflow, dict) else ():
                if isinstance(node, dict) and isinstance(node.get("inputs"), dict):
                    _strings(node["inputs"], names)
        return names

    def _resolve_all(self, paths: list[str]) -> list[tuple[str, _Target | DashboardError]]:
        real_roots = real_model_roots(self.index.roots)
        resolved: list[tuple[str, _Target | DashboardError]] = []
        for path in paths:
            try:
                resolved.append((path, self._resolve(path, real_roots)))
            except DashboardError as refused:
                resolved.append((path, refused))
            except ValueError:  # not encodable as a file name (a lone surrogate, say)
                resolved.append((path, InvalidRequest("Not a valid file name")))
        return resolved

    def _resolve(self, path: str, real_roots: set[str]) -> _Target:
        """What deleting `path` would unlink; raises the DashboardError that refuses it. Blocking."""
        if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
            raise InvalidRequest("Absolute paths are refused: give <type>/<relative path>")
        parts = path.split("/")
        if len(parts) < 2 or "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
            raise InvalidRequest("Expected <type>/<relative path> with no '.', '..' or empty parts")
        folder_type, relpath = parts[0], "/".join(parts[1:])
        if folder_type not in self.index.roots:
            folder_type = canonical_type(folder_type) or ""
            if folder_type not in self.index.roots:
                raise InvalidRequest(f"Unknown model type {parts[0]!r}")
        name = parts[-1]
        if name.endswith(PARTIAL_SUFFIXES) or os.path.splitext(name)[1].lower() not in MODEL_EXTENSIONS:
            raise InvalidRequest("Not a model file")
        for root in self.index.roots[folder_type]:
            candidate = os.path.join(root, *parts[1:])
            try:
                info = os.lstat(candidate)
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                continue
            except OSError as exc:
                raise InvalidRequest(f"Cannot read {path}: {exc.strerror}") from None
            refusal = outside_model_folders(candidate, real_roots)
            if refusal is not None:
                raise InvalidRequest(refusal)
            parent = os.path.realpath(os.path.dirname(candidate))
            size = 0
            if stat.S_ISLNK(info.st_mode):
                if os.path.isdir(candidate):
                    raise InvalidRequest("A folder, not a model file; refused")
            elif stat.S_ISDIR(info.st_mode):
                raise InvalidRequest("A folder, not a model file; refused")
            elif not stat.S_ISREG(info.st_mode):
                raise InvalidRequest("Not a regular file; refused")
            else:
                size = info.st_size
            return _Target(path, f"{folder_type}/{relpath}", folder_type, relpath,
                           os.path.join(parent, name), size)
        raise ModelNotFound(f"No model {path!r}")


def _unlink_all(targets: list[_Target]) -> list[DashboardError | None]:
    """Unlink each target (blocking); None where it worked. A symlink is removed, never its target."""
    outcomes: list[DashboardError | None] = []
    for target in targets:
        try:
            os.unlink(target.unlink)
            remove_record(Path(target.unlink))  # what the dashboard knew of it goes with it
            outcomes.append(None)
        except FileNotFoundError:
            outcomes.append(ModelNotFound(f"No model {target.path!r}"))
        except IsADirectoryError:
            outcomes.append(InvalidRequest("A folder, not a model file; refused"))
        except PermissionError as exc:
            outcomes.append(Forbidden(f"Not allowed to delete {target.path}: {exc.strerror}"))
        except OSError as exc:
            outcomes.append(InternalError(f"Could not delete {target.path}: {exc.strerror or exc}"))
    return outcomes


def _inside(path: str, real_roots: set[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in real_roots)


def _named(path: str, relpath: str, names: set[str]) -> bool:
    """Whether a prompt input names this file: by its path in the folder, its file name, or with its type."""
    return bool({path, relpath, relpath.rsplit("/", 1)[-1]} & names)


def _strings(value: Any, into: set[str], depth: int = 0) -> None:
    if isinstance(value, str):
        into.add(value.replace("\\", "/"))
    elif depth < 8 and isinstance(value, dict):
        for item in value.values():
            _strings(item, into, depth + 1)
    elif depth < 8 and isinstance(value, list):
        for item in value:
            _strings(item, into, depth + 1)
