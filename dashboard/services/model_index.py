"""The model inventory: every model file under every model folder, cached and refreshed incrementally.

A scan walks the folders off the event loop and remembers each directory's mtime. A refresh stats
the directories only and re-lists just those whose mtime changed (a file added, removed or
renamed changes its directory's mtime, as ComfyUI's own file-list cache assumes), so a repeated
listing of a big library costs one stat per directory, not one per file. A directory whose mtime
is within `RACY_SECONDS` of a scan is listed again by the next scan too: a change made in the same
clock tick as the listing leaves the mtime as it was (git calls this "racily clean").

Symlinked directories are followed, each real directory once per folder type, so a link to an
ancestor cannot loop. Files that vanish while being listed are skipped; folders that cannot be
read are reported in `problems` and skipped.

Each file is kept as a plain tuple (`Row`), not an object: the cyclic GC stops tracking tuples of
strings and numbers, whereas 20,000 objects (dataclass or named tuple) kept alive by every cold
scan made Python run a full collection after it, a ~25 ms pause of the event loop. `get()` and
`files()` hand out ModelFile objects made on demand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..comfy.folders import FOLDER_TYPES, MODEL_EXTENSIONS, canonical_type
from ..errors import invalid
from ..threads import LOOP_DEFAULT, Threads

log = logging.getLogger("dashboard.models")

#: Names that are never models: downloads in progress and their sidecars (the extension check
#: already leaves them out; named here for whoever deletes or writes model files).
PARTIAL_SUFFIXES = (".part", ".part.json")
_MODEL_SUFFIXES = tuple(MODEL_EXTENSIONS)
_SCANDIR_FD = os.scandir in os.supports_fd  # not on Windows
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)

#: A directory modified this close to a scan is listed again by the next one (coarse mtime clocks).
RACY_SECONDS = 2.0


#: One file as the index keeps it: (type, relpath, root, size, modified), ModelFile's fields in order.
Row = tuple[str, str, str, int, float]
#: Where each field sits in a Row: read `row[SIZE]`, never `row[3]`.
TYPE, RELPATH, ROOT, SIZE, MODIFIED = range(5)


class ModelFile(NamedTuple):
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
    files: dict[str, Row]  # by path
    subdirs: list[str]
    problems: list[dict[str, str]]
    racy: bool = False

    def same_content(self, other: _Dir) -> bool:
        return self.files == other.files and self.subdirs == other.subdirs and self.problems == other.problems


@dataclass
class _Scan:
    """What one scan has gathered so far."""

    started_ns: int
    dirs: dict[str, _Dir]
    visited: set[tuple[str, int, int]]
    files: dict[str, Row]
    problems: list[dict[str, str]]


class ModelIndex:
    """What model files exist, by folder type. `roots` maps a type to its folders (first = default)."""

    def __init__(self, roots: Mapping[str, Iterable[Path]], max_age: float = 1.0,
                 threads: Threads = LOOP_DEFAULT) -> None:
        self.roots = {name: [Path(p) for p in paths] for name, paths in roots.items()}
        self.max_age = max_age
        self.threads = threads
        self.problems: list[dict[str, str]] = []
        self.version = 0
        self._dirs: dict[str, _Dir] = {}
        self._files: dict[str, Row] = {}
        self._refreshed_at = float("-inf")  # when the last finished scan started (monotonic)
        self._invalidated_at = float("-inf")
        self._refreshing: asyncio.Future | None = None

    async def refresh(self, force: bool = False) -> None:
        """Bring the index up to date (off the loop); concurrent callers share one scan.

        Without `force`, a scan that started less than `max_age` seconds ago (and after the last
        `invalidate()`) is recent enough; with it, only a scan that starts after this call is.
        """
        requested = time.monotonic()
        fresh_from = requested if force else requested - self.max_age
        while max(fresh_from, self._invalidated_at) > self._refreshed_at:
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.ensure_future(self.threads.run(self._scan))
            await asyncio.shield(self._refreshing)

    def files(self) -> dict[str, ModelFile]:
        """Every model file by path, as of the last refresh (made on each call: see `rows()`)."""
        return {path: ModelFile(*row) for path, row in self._files.items()}

    def rows(self) -> Mapping[str, Row]:
        """Every model file by path as a Row, as of the last refresh; a scan never changes a mapping
        it has handed out, so bulk readers may use it from another thread."""
        return self._files

    def get(self, path: str) -> ModelFile | None:
        """A model by `<type>/<relative path>`."""
        row = self._files.get(path)
        return None if row is None else ModelFile(*row)

    def invalidate(self) -> None:
        """Make the next refresh scan again (after this process changed files)."""
        self._invalidated_at = time.monotonic()

    def reset(self) -> None:
        """Forget every cached directory listing: the next refresh walks everything (benchmarks)."""
        self._dirs = {}
        self.invalidate()

    def default_root(self, folder_type: str) -> Path | None:
        """Where new files of this type go (ComfyUI's first path for the type)."""
        paths = self.roots.get(folder_type)
        return paths[0] if paths else None

    def known_types(self) -> list[str]:
        """Every folder type with a folder: the standard ones in ComfyUI's order, then the rest by name."""
        return [n for n in FOLDER_TYPES if n in self.roots] + sorted(n for n in self.roots if n not in FOLDER_TYPES)

    def require_type(self, name: str) -> str:
        """The folder type for `name` (legacy names mapped), or INVALID_REQUEST listing the known ones."""
        for candidate in (name, canonical_type(name)):
            if candidate in self.roots:
                return candidate
        known = self.known_types()
        raise invalid(f"Unknown model type {name!r}; known types: {', '.join(known)}", field="type",
                      value=name, known_types=known)

    def _scan(self) -> None:
        started = time.monotonic()
        scan = _Scan(time.time_ns(), {}, set(), {}, [])
        changed = False
        for folder_type, roots in self.roots.items():
            for root in roots:
                changed |= self._scan_dir(scan, folder_type, str(root), str(root))
        changed |= scan.dirs.keys() != self._dirs.keys()
        self._dirs = scan.dirs
        self._files = scan.files
        self.problems = scan.problems
        if changed:  # after the files: whoever sees the new version sees the new files
            self.version += 1
        self._refreshed_at = started

    def _scan_dir(self, scan: _Scan, folder_type: str, root: str, directory: str) -> bool:
        key = f"{folder_type}\0{directory}"
        if key in scan.dirs:
            return False
        try:
            info = os.stat(directory)
        except FileNotFoundError:
            return False
        except OSError as exc:
            scan.problems.append(_problem(directory, exc))
            return False
        identity = (folder_type, info.st_dev, info.st_ino)
        if identity in scan.visited:
            return False  # a symlink to a folder already listed for this type (or to an ancestor)
        scan.visited.add(identity)
        cached = self._dirs.get(key)
        if cached is not None and cached.mtime_ns == info.st_mtime_ns and not cached.racy:
            entry, changed = cached, False
        else:
            entry = self._list_dir(scan, folder_type, root, directory, info.st_mtime_ns)
            if entry is None:
                return cached is not None
            changed = cached is None or not cached.same_content(entry)
        scan.dirs[key] = entry
        scan.problems.extend(entry.problems)
        if scan.files.keys().isdisjoint(entry.files):
            scan.files.update(entry.files)
        else:
            for path, model in entry.files.items():
                scan.files.setdefault(path, model)  # the first root of a type wins, as in ComfyUI
        for sub in entry.subdirs:
            changed |= self._scan_dir(scan, folder_type, root, sub)
        return changed

    def _list_dir(self, scan: _Scan, folder_type: str, root: str, directory: str, mtime_ns: int) -> _Dir | None:
        found: dict[str, Row] = {}
        subdirs: list[str] = []
        problems: list[dict[str, str]] = []
        try:
            # Through a descriptor, each stat below is a one-name lookup (fstatat), not a whole path's.
            fd = os.open(directory, _DIR_FLAGS) if _SCANDIR_FD else None
        except FileNotFoundError:
            return None
        except OSError as exc:
            scan.problems.append(_problem(directory, exc))
            return None
        prefix = "" if directory == root else directory[len(root) + 1:].replace(os.sep, "/") + "/"
        key_prefix = f"{folder_type}/{prefix}"
        try:
            with os.scandir(directory if fd is None else fd) as listing:
                for item in listing:  # the hot loop of a cold scan: keep it lean
                    name = item.name
                    try:
                        if item.is_dir():
                            if name[0] != ".":
                                subdirs.append(os.path.join(directory, name))
                            continue
                        if not (name.endswith(_MODEL_SUFFIXES) or name.lower().endswith(_MODEL_SUFFIXES)) or (
                                name[0] == "." and not _has_extension(name)):
                            continue
                        stat = item.stat()  # of the symlink's target for a symlink
                    except FileNotFoundError:
                        continue  # vanished while we looked, or a dangling symlink
                    except OSError as exc:
                        problems.append(_problem(os.path.join(directory, name), exc))
                        continue
                    found[key_prefix + name] = (folder_type, prefix + name, root, stat.st_size, stat.st_mtime)
        except FileNotFoundError:
            return None
        except OSError as exc:
            scan.problems.append(_problem(directory, exc))
            return None
        finally:
            if fd is not None:
                os.close(fd)
        racy = mtime_ns >= scan.started_ns - int(RACY_SECONDS * 1e9)
        return _Dir(mtime_ns, found, sorted(subdirs), problems, racy)


def _has_extension(name: str) -> bool:
    """As os.path.splitext sees it: `.safetensors` alone is a hidden file with no extension."""
    return bool(os.path.splitext(name)[1])


def _problem(path: str, exc: OSError) -> dict[str, str]:
    return {"path": path, "error": exc.strerror or str(exc)}
