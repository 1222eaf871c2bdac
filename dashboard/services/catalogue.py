"""The preset catalogue: shipped presets, the user's own, and ComfyUI's official templates.

Shipped presets are read once; user presets (`<data dir>/presets/*.yaml`) are re-read when a file
is added, removed or changed, without a restart; official templates are read once, when the
package is installed and the setting allows. A user preset with the id of another replaces it. A
broken file is skipped, logged once, and listed in `errors`; it never breaks the catalogue.
A preset for a newer ComfyUI (a model folder type this one lacks, also through a dependency) stays
listed with its `missing_folders`, and is noted once in the log. All file reading happens off the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..threads import LOOP_DEFAULT, Threads
from .preset_schema import Preset, PresetError, parse_preset
from .templates import load_template_presets, templates_dir
from .watch import folder_signature

log = logging.getLogger("dashboard.presets")

_PATTERNS = ("*.yaml", "*.yml")
_MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class _Loaded:
    presets: tuple[Preset, ...]
    errors: tuple[dict[str, str], ...]


class Catalogue:
    """All presets by id, with the problems found while reading them."""

    def __init__(self, shipped_dir: Path, user_dir: Path, folder_types: set[str], templates: bool = True,
                 max_age: float = 1.0, threads: Threads = LOOP_DEFAULT) -> None:
        self.shipped_dir = shipped_dir
        self.threads = threads
        self.user_dir = user_dir
        self.folder_types = folder_types
        self.use_templates = templates
        self.max_age = max_age
        self._shipped: _Loaded | None = None
        self._templates: _Loaded | None = None
        self._user = _Loaded((), ())
        self._user_signature: tuple = ()
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()
        self._logged: set[str] = set()
        self.presets: dict[str, Preset] = {}
        self.errors: list[dict[str, str]] = []
        self.categories: list[str] = []

    async def refresh(self, force: bool = False) -> None:
        """Re-read what changed on disk (at most once per `max_age` seconds unless forced)."""
        if not force and time.monotonic() - self._checked_at < self.max_age:
            return
        async with self._lock:
            if not force and time.monotonic() - self._checked_at < self.max_age:
                return
            changed = await self.threads.run(self._load_changes)
            self._checked_at = time.monotonic()
            if changed:
                self._merge()

    def get(self, preset_id: str) -> Preset | None:
        return self.presets.get(preset_id)

    def set_folder_types(self, folder_types: set[str]) -> None:
        """This ComfyUI's model folder types, read again at start; presets are re-read if they changed."""
        if folder_types != self.folder_types:
            self.folder_types = set(folder_types)
            self._shipped = self._templates = None
            self._user_signature = ()
            self._checked_at = float("-inf")

    def _load_changes(self) -> bool:
        changed = False
        if self._shipped is None:
            self._shipped = _load_dir(self.shipped_dir, "shipped", self.folder_types)
            changed = True
        if self._templates is None:
            folder = templates_dir() if self.use_templates else None
            presets, errors = load_template_presets(folder, self.folder_types) if folder else ([], [])
            self._templates = _Loaded(tuple(presets), tuple(errors))
            changed = True
        signature = folder_signature(self.user_dir, _PATTERNS, recursive=True)
        if signature != self._user_signature:
            self._user = _load_dir(self.user_dir, "user", self.folder_types)
            self._user_signature = signature
            changed = True
        return changed

    def _merge(self) -> None:
        merged: dict[str, Preset] = {}
        for loaded in (self._shipped, self._templates, self._user):
            for preset in loaded.presets:
                merged[preset.id] = preset
        errors = [*self._shipped.errors, *self._templates.errors, *self._user.errors]
        for preset in list(merged.values()):
            missing = [d for d in preset.dependencies if d not in merged]
            if missing:
                errors.append({"file": preset.origin, "error": f"unknown dependencies: {', '.join(missing)}"})
                del merged[preset.id]
        for error in errors:
            self._log_once(logging.WARNING, f"Preset skipped: {error['file']}: {error['error']}")
        merged = _with_missing_folders_of_dependencies(merged)
        newer = sorted(p.id for p in merged.values() if p.missing_folders)
        if newer:
            folders = sorted({f for p in merged.values() for f in p.missing_folders})
            self._log_once(logging.INFO, f"{len(newer)} presets need a newer ComfyUI (this one has no model folder "
                                         f"{', '.join(folders)}): {', '.join(newer)}")
        self.presets = dict(sorted(merged.items()))
        self.errors = errors
        self.categories = sorted({p.category for p in merged.values()})

    def _log_once(self, level: int, message: str) -> None:
        if message not in self._logged:
            self._logged.add(message)
            log.log(level, "%s", message)


def _with_missing_folders_of_dependencies(presets: dict[str, Preset]) -> dict[str, Preset]:
    """A preset whose dependencies need folders this ComfyUI lacks needs them too."""

    def missing(preset: Preset, seen: frozenset[str]) -> set[str]:
        folders = set(preset.missing_folders)
        for dep in preset.dependencies:
            if dep in presets and dep not in seen:
                folders |= missing(presets[dep], seen | {dep})
        return folders

    result = {}
    for preset_id, preset in presets.items():
        folders = tuple(sorted(missing(preset, frozenset({preset_id}))))
        changed = folders != preset.missing_folders
        result[preset_id] = dataclasses.replace(preset, missing_folders=folders) if changed else preset
    return result


def _load_dir(folder: Path, source: str, folder_types: set[str]) -> _Loaded:
    presets: list[Preset] = []
    errors: list[dict[str, str]] = []
    files = sorted(p for pattern in _PATTERNS for p in folder.rglob(pattern)) if folder.is_dir() else []
    seen: dict[str, str] = {}
    for path in files:
        name = str(path.relative_to(folder))
        try:
            preset = load_preset_file(path, source, folder_types)
        except PresetError as exc:
            errors.append({"file": name, "error": str(exc)})
            continue
        if preset.id in seen:
            errors.append({"file": name, "error": f"id {preset.id} is already defined in {seen[preset.id]}"})
            continue
        seen[preset.id] = name
        presets.append(preset)
    return _Loaded(tuple(presets), tuple(errors))


def load_preset_file(path: Path, source: str, folder_types: set[str]) -> Preset:
    """Read one preset YAML file; raises PresetError with a message a user can act on."""
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise PresetError("file is larger than 1 MiB")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"unreadable: {exc}") from None
    except yaml.YAMLError as exc:
        raise PresetError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_preset(data, source=source, origin=path.name, folder_types=folder_types)
