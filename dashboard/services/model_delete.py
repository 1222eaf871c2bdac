"""Deleting model files (DELETE /api/models), and the rule of what may be touched in the model folders.

Deleting is refused for anything that is not a model file inside the model folders: `..`, absolute
paths, folders, and symlinks whose target lies outside every model folder (checked on real paths,
`os.path.realpath`), so nothing outside the model folders is ever touched. Downloads apply the same
rule (`outside_model_folders`) before they write. A model that a queued or running prompt refers to
is kept unless `force` is given.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..comfy.backend import ComfyBackend
from ..comfy.folders import MODEL_EXTENSIONS, canonical_type
from ..errors import ComfyUIUnavailable, DashboardError, Forbidden, InternalError, InvalidRequest, ModelNotFound
from ..threads import LOOP_DEFAULT, Threads
from .downloads.records import remove_record
from .model_index import PARTIAL_SUFFIXES, ModelIndex
from .sizes import gb

log = logging.getLogger("dashboard.models")

_IN_USE = "A queued or running prompt uses this model; use force to delete it"
_A_FOLDER = "A folder, not a model file; refused"


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


@dataclass(frozen=True)
class Target:
    """A path that may be deleted: what to unlink, and what it frees."""

    requested: str  # as the client wrote it
    path: str  # `<type>/<relative path>`, legacy type names mapped
    folder_type: str
    relpath: str
    unlink: str
    size: int


class ModelDeleter:
    """Deletes model files: resolves each path on disk, keeps those a prompt uses, unlinks the rest;
    then the index is invalidated and ComfyUI forgets the folders' file lists."""

    def __init__(self, index: ModelIndex, backend: ComfyBackend, threads: Threads = LOOP_DEFAULT) -> None:
        self.index = index
        self.backend = backend
        self.threads = threads

    async def delete(self, paths: list[str], force: bool = False) -> dict[str, Any]:
        """The body of DELETE /api/models: delete what may be, and say why each other path was not."""
        requested = list(dict.fromkeys(paths))
        resolved = await self.threads.run(resolve_all, requested, self.index.roots)
        targets = [outcome for _path, outcome in resolved if isinstance(outcome, Target)]
        errors = [_error(path, outcome) for path, outcome in resolved if isinstance(outcome, DashboardError)]
        if targets and not force:
            in_use = await self.names_in_use()
            errors += [{"path": t.requested, "code": "MODEL_IN_USE", "message": _IN_USE}
                       for t in targets if _named(t.path, t.relpath, in_use)]
            targets = [t for t in targets if not _named(t.path, t.relpath, in_use)]
        outcomes = await self.threads.run(unlink_all, targets)
        deleted = [t for t, error in zip(targets, outcomes, strict=True) if error is None]
        errors += [_error(t.requested, e) for t, e in zip(targets, outcomes, strict=True) if e is not None]
        if deleted:
            self._forget(deleted)
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
        names = await self.names_in_use() if paths else set()
        return [path for path in paths if _named(path, path.split("/", 1)[-1], names)]

    async def names_in_use(self) -> set[str]:
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

    def _forget(self, deleted: list[Target]) -> None:
        self.index.invalidate()
        for folder_type in dict.fromkeys(t.folder_type for t in deleted):
            self.backend.forget_model_folder(folder_type)
        log.info("Deleted %d model file(s): %s", len(deleted), ", ".join(t.path for t in deleted))


def resolve_all(paths: list[str], roots: Mapping[str, list[Path]]) -> list[tuple[str, Target | DashboardError]]:
    """Each path with what deleting it would unlink, or the DashboardError that refuses it. Blocking."""
    real_roots = real_model_roots(roots)
    resolved: list[tuple[str, Target | DashboardError]] = []
    for path in paths:
        try:
            resolved.append((path, resolve(path, roots, real_roots)))
        except DashboardError as refused:
            resolved.append((path, refused))
        except ValueError:  # not encodable as a file name (a lone surrogate, say)
            resolved.append((path, InvalidRequest("Not a valid file name")))
    return resolved


def resolve(path: str, roots: Mapping[str, list[Path]], real_roots: set[str]) -> Target:
    """What deleting `path` would unlink: the first model folder of its type that has it. Blocking."""
    folder_type, parts = _split(path, roots)
    for root in roots[folder_type]:
        candidate = os.path.join(root, *parts)
        info = _lstat(candidate, path)
        if info is None:
            continue
        refusal = outside_model_folders(candidate, real_roots)
        if refusal is not None:
            raise InvalidRequest(refusal)
        parent = os.path.realpath(os.path.dirname(candidate))
        return Target(path, f"{folder_type}/{'/'.join(parts)}", folder_type, "/".join(parts),
                      os.path.join(parent, parts[-1]), _file_size(candidate, info))
    raise ModelNotFound(f"No model {path!r}")


def _split(path: str, roots: Mapping[str, list[Path]]) -> tuple[str, list[str]]:
    """`<type>/<relative path>` as its folder type (legacy names mapped) and the relative path's parts."""
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        raise InvalidRequest("Absolute paths are refused: give <type>/<relative path>")
    parts = path.split("/")
    if len(parts) < 2 or "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
        raise InvalidRequest("Expected <type>/<relative path> with no '.', '..' or empty parts")
    folder_type = parts[0]
    if folder_type not in roots:
        folder_type = canonical_type(folder_type) or ""
        if folder_type not in roots:
            raise InvalidRequest(f"Unknown model type {parts[0]!r}")
    name = parts[-1]
    if name.endswith(PARTIAL_SUFFIXES) or os.path.splitext(name)[1].lower() not in MODEL_EXTENSIONS:
        raise InvalidRequest("Not a model file")
    return folder_type, parts[1:]


def _lstat(candidate: str, path: str) -> os.stat_result | None:
    """The file's own status (a symlink's, not its target's), or None when there is none."""
    try:
        return os.lstat(candidate)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise InvalidRequest(f"Cannot read {path}: {exc.strerror}") from None


def _file_size(candidate: str, info: os.stat_result) -> int:
    """The bytes deleting frees (0 for a symlink); INVALID_REQUEST for a folder or a special file."""
    if stat.S_ISLNK(info.st_mode):
        if os.path.isdir(candidate):
            raise InvalidRequest(_A_FOLDER)
        return 0
    if stat.S_ISDIR(info.st_mode):
        raise InvalidRequest(_A_FOLDER)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidRequest("Not a regular file; refused")
    return info.st_size


def unlink_all(targets: list[Target]) -> list[DashboardError | None]:
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
            outcomes.append(InvalidRequest(_A_FOLDER))
        except PermissionError as exc:
            outcomes.append(Forbidden(f"Not allowed to delete {target.path}: {exc.strerror}"))
        except OSError as exc:
            outcomes.append(InternalError(f"Could not delete {target.path}: {exc.strerror or exc}"))
    return outcomes


def _error(path: str, error: DashboardError) -> dict[str, str]:
    return {"path": path, "code": error.code, "message": error.message}


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
