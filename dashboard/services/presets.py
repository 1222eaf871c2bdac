"""Presets as users see them: the catalogue joined with what is on disk (and being downloaded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from huggingface_hub import hf_hub_url

from ..errors import PresetNotFound, PresetUnsupported
from .catalogue import Catalogue
from .downloads.records import vouches_for
from .model_index import ModelIndex
from .preset_schema import Preset, PresetFile
from .sizes import gb, human_size, iso_utc


class InstallProgress(Protocol):
    """What the download manager tells about a preset being installed."""

    def preset_progress(self, preset_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class FileState:
    file: PresetFile
    installed: bool
    modified: float | None
    damaged: bool = False  # verified once, changed on disk since


class PresetService:
    """Lists, finds and reports on presets."""

    def __init__(self, catalogue: Catalogue, index: ModelIndex, hf_endpoint: str | None = None) -> None:
        self.catalogue = catalogue
        self.index = index
        self.hf_endpoint = hf_endpoint
        self.progress: InstallProgress | None = None
        #: The model-folder paths that have a newer version at their source, as last checked.
        self.updated: Callable[[], set[str]] = set
        #: Files the download manager fetched and verified: path -> {size, sha256, ...}.
        self.verified: dict[str, dict[str, Any]] = {}

    async def refresh(self) -> None:
        """Bring the catalogue and the model index up to date (both throttled, both off the loop)."""
        await self.catalogue.refresh()
        await self.index.refresh()

    async def list(self, category: str | None = None, type_: str | None = None, installed: bool | None = None,
                   search: str | None = None) -> dict[str, Any]:
        """The body of GET /api/presets: every filter given must hold."""
        await self.refresh()
        presets = list(self.catalogue.presets.values())
        selected = presets
        if category is not None:
            wanted = category.lower()
            selected = [p for p in selected if p.category.lower() == wanted]
        if type_ is not None:
            selected = [p for p in selected if p.type == type_]
        for term in search.lower().split() if search else ():
            selected = [p for p in selected if term in p.search_text]
        summaries = []
        for preset in selected:
            is_installed = self.is_installed(preset)
            if installed is None or is_installed == installed:
                summaries.append(self._summary(preset, is_installed))
        return {
            "presets": summaries,
            "total": len(presets),
            "filtered": len(summaries),
            "categories": self.catalogue.categories,
            "errors": list(self.catalogue.errors),
        }

    async def detail(self, preset_id: str) -> dict[str, Any]:
        """The body of GET /api/presets/{id}."""
        await self.refresh()
        preset = self.find(preset_id)
        states = self.file_states(preset)
        installed = self._complete(states)
        return {
            **self._summary(preset, installed),
            "install_date": iso_utc(max(s.modified for s in states if s.installed)) if installed else None,
            "license": preset.license,
            "license_url": self.model_page(preset),
            "requirements": {"vram_gb": preset.vram_gb, "disk_gb": gb(preset.download_bytes)},
            "files": [self._file(s) for s in states],
            "dependencies": list(preset.dependencies),
            "workflows": list(preset.workflows),
        }

    async def status(self, preset_id: str) -> dict[str, Any]:
        """The body of GET /api/presets/{id}/status."""
        await self.refresh()
        preset = self.find(preset_id)
        states = [s for s in self.file_states(preset) if not s.file.optional]
        done = [s for s in states if s.installed]
        total_bytes = sum(s.file.size for s in states) or 1
        body: dict[str, Any] = {
            "preset_id": preset.id,
            "status": "unsupported" if preset.missing_folders else "damaged" if any(s.damaged for s in states)
            else "installed" if len(done) == len(states) else "partial" if done else "not_installed",
            "progress": round(100 * sum(s.file.size for s in done) / total_bytes, 1),
            "current_file": None,
            "download_speed_mbps": None,
            "eta_seconds": None,
            "files": {"total": len(states), "completed": len(done), "failed": 0},
        }
        live = self.progress.preset_progress(preset.id) if self.progress else None
        if live and body["status"] != "installed":
            body.update(live)
        return body

    def require(self, preset_id: str) -> Preset:
        """The preset with this id, to install or uninstall: 404 PRESET_NOT_FOUND, or 409 PRESET_UNSUPPORTED
        when this ComfyUI lacks a model folder it needs."""
        preset = self.find(preset_id)
        if preset.missing_folders:
            raise PresetUnsupported(f"{preset.name} needs a newer ComfyUI: this one has no model folder "
                                    f"{', '.join(preset.missing_folders)}",
                                    {"preset_id": preset_id, **requires(preset)})
        return preset

    def find(self, preset_id: str) -> Preset:
        """The preset with this id, or 404 PRESET_NOT_FOUND."""
        preset = self.catalogue.get(preset_id)
        if preset is None:
            raise PresetNotFound(f"No preset with id {preset_id!r}", {"preset_id": preset_id})
        return preset

    def with_dependencies(self, preset: Preset) -> list[Preset]:
        """`preset` and the presets it depends on, dependencies first (each once)."""
        ordered: list[Preset] = []

        def visit(p: Preset) -> None:
            for dep_id in p.dependencies:
                dep = self.catalogue.get(dep_id)
                if dep is not None and dep not in ordered and dep is not preset:
                    visit(dep)
            if p not in ordered:
                ordered.append(p)

        visit(preset)
        return ordered

    def install_bytes(self, preset: Preset) -> int:
        """Bytes an install would download now, dependencies included (a shared file counted once)."""
        missing = {s.file.path: s.file.size for p in self.with_dependencies(preset) for s in self.file_states(p)
                   if not s.file.optional and not s.installed}
        return sum(missing.values())

    def is_installed(self, preset: Preset) -> bool:
        """Every required file is on disk (as of the model index's last refresh)."""
        return self._complete(self.file_states(preset))

    def file_states(self, preset: Preset) -> list[FileState]:
        states = []
        for f in preset.files:
            model = self.index.get(f.path)
            record = self.verified.get(f.path)
            damaged = False
            if model is None or model.size == 0:
                ok = False
            elif record is not None:
                ok = vouches_for(record, model.size, model.modified, f.sha256)
                damaged = not ok
            else:
                ok = f.sha256 is None or model.size == f.size
            states.append(FileState(f, ok, model.modified if model else None, damaged))
        return states

    def model_page(self, preset: Preset) -> str | None:
        """Where a preset's licence can be read (and, when gated, accepted): its first repository's page."""
        repo = next((f.repo for f in preset.files if f.repo), None)
        return f"{(self.hf_endpoint or 'https://huggingface.co').rstrip('/')}/{repo}" if repo else None

    def file_url(self, f: PresetFile) -> str:
        """Where a file is downloaded from."""
        if f.repo is None:
            return f.url
        return hf_hub_url(f.repo, f.repo_file, revision=f.revision, endpoint=self.hf_endpoint)

    @staticmethod
    def _complete(states: list[FileState]) -> bool:
        return all(s.installed for s in states if not s.file.optional)

    def _summary(self, preset: Preset, installed: bool) -> dict[str, Any]:
        return {
            "id": preset.id,
            "name": preset.name,
            "category": preset.category,
            "type": preset.type,
            "description": preset.description,
            "download_size": human_size(preset.download_bytes),
            "download_bytes": preset.download_bytes,
            "install_bytes": self.install_bytes(preset),
            "installed": installed,
            "use_case": preset.use_case,
            "tags": list(preset.tags),
            "source": preset.source,
            "gated": preset.gated,
            "vram_gb": preset.vram_gb,
            "requires": requires(preset) if preset.missing_folders else None,
            "update_available": any(f.path in updated for f in preset.files) if (updated := self.updated()) else False,
        }

    def _file(self, state: FileState) -> dict[str, Any]:
        f = state.file
        return {
            "path": f.path,
            "url": self.file_url(f),
            "size": human_size(f.size),
            "size_bytes": f.size,
            "sha256": f.sha256,
            "optional": f.optional,
            "installed": state.installed,
            "damaged": state.damaged,
        }


def requires(preset: Preset) -> dict[str, Any]:
    """What a preset for a newer ComfyUI needs that this one lacks (the `requires` of its summary)."""
    return {"comfyui_folders": list(preset.missing_folders)}
