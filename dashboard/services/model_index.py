"""The model inventory: every model file under every model folder, cached and refreshed incrementally.

A scan walks the folders off the event loop and remembers each directory's mtime. A refresh stats
the directories only and re-lists just those whose mtime changed (a file added, removed or
renamed changes its directory's mtime, as ComfyUI's own file-list cache assumes), so a repeated
listing of a big library costs one stat per directory, not one per file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..comfy.folders import MODEL_EXTENSIONS

log = logging.getLogger("dashboard.models")

#: Names that are never models: downloads in progress and their sidecars.
PARTIAL_SUFFIXES = (".part", ".part.json")


@dataclass(frozen=True)
class ModelFile:
    """One model file: `path` is `<type>/<relative path>` with forward slashes."""

    type: str
    relpath: str
    root: str
    size: int
    modified: float

    @property
    def path(self) -> str:
        return f"{self.type}/{self.relpath}"

    @property
    def abspath(self) -> str:
        return os.path.join(self.root, *self.relpath.split("/"))


@dataclass
class _Dir:
    mtime_ns: int
    files: dict[str, ModelFile]
    subdirs: list[str]


class ModelIndex:
    """What model files exist, by folder type. `roots` maps a type to its folders (first = default)."""

    def __init__(self, roots: Mapping[str, Iterable[Path]], max_age: float = 1.0) -> None:
        self.roots = {name: [Path(p) for p in paths] for name, paths in roots.items()}
        self.max_age = max_age
        self.problems: list[dict[str, str]] = []
        self.version = 0
        self._dirs: dict[str, _Dir] = {}
        self._files: dict[str, ModelFile] = {}
        self._refreshed_at = float("-inf")
        self._refreshing: asyncio.Future | None = None

    async def refresh(self, force: bool = False) -> None:
        """Bring the index up to date (off the loop); concurrent callers share one refresh."""
        if not force and time.monotonic() - self._refreshed_at < self.max_age:
            return
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, self._scan))
            self._refreshing.add_done_callback(lambda _f: setattr(self, "_refreshing", None))
        await asyncio.shield(self._refreshing)

    def files(self) -> dict[str, ModelFile]:
        """Every model file by path, as of the last refresh."""
        return self._files

    def get(self, path: str) -> ModelFile | None:
        """A model by `<type>/<relative path>`."""
        return self._files.get(path)

    def invalidate(self) -> None:
        """Make the next refresh happen now (after this process changed files)."""
        self._refreshed_at = float("-inf")

    def default_root(self, folder_type: str) -> Path | None:
        """Where new files of this type go (ComfyUI's first path for the type)."""
        paths = self.roots.get(folder_type)
        return paths[0] if paths else None

    def _scan(self) -> None:
        started = time.monotonic()
        seen_dirs: dict[str, _Dir] = {}
        files: dict[str, ModelFile] = {}
        problems: list[dict[str, str]] = []
        changed = False
        for folder_type, roots in self.roots.items():
            for root in roots:
                changed |= self._scan_dir(folder_type, str(root), str(root), seen_dirs, files, problems)
        if changed or seen_dirs.keys() != self._dirs.keys():
            self.version += 1
        self._dirs = seen_dirs
        self._files = files
        self.problems = problems
        self._refreshed_at = started

    def _scan_dir(self, folder_type: str, root: str, directory: str, seen: dict[str, _Dir],
                  files: dict[str, ModelFile], problems: list[dict[str, str]]) -> bool:
        key = f"{folder_type}\0{directory}"
        if key in seen:
            return False
        try:
            mtime_ns = os.stat(directory).st_mtime_ns
        except FileNotFoundError:
            return False
        except OSError as exc:
            problems.append({"path": directory, "error": exc.strerror or str(exc)})
            return False
        cached = self._dirs.get(key)
        changed = cached is None or cached.mtime_ns != mtime_ns
        entry = self._list_dir(folder_type, root, directory, mtime_ns, problems) if changed else cached
        if entry is None:
            return True
        seen[key] = entry
        for model in entry.files.values():
            files.setdefault(model.path, model)  # the first root of a type wins, as in ComfyUI
        for sub in entry.subdirs:
            changed |= self._scan_dir(folder_type, root, sub, seen, files, problems)
        return changed

    def _list_dir(self, folder_type: str, root: str, directory: str, mtime_ns: int,
                  problems: list[dict[str, str]]) -> _Dir | None:
        found: dict[str, ModelFile] = {}
        subdirs: list[str] = []
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return None
        except OSError as exc:
            problems.append({"path": directory, "error": exc.strerror or str(exc)})
            return None
        for item in entries:
            try:
                if item.is_dir():
                    if not item.name.startswith("."):
                        subdirs.append(item.path)
                    continue
                name = item.name
                if name.endswith(PARTIAL_SUFFIXES) or os.path.splitext(name)[1].lower() not in MODEL_EXTENSIONS:
                    continue
                stat = item.stat()
            except FileNotFoundError:
                continue  # vanished while we looked
            except OSError as exc:
                problems.append({"path": item.path, "error": exc.strerror or str(exc)})
                continue
            relpath = os.path.relpath(item.path, root).replace(os.sep, "/")
            found[relpath] = ModelFile(folder_type, relpath, root, stat.st_size, stat.st_mtime)
        return _Dir(mtime_ns, found, sorted(subdirs))
