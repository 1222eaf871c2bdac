"""The workflow library: shipped workflows, the user's own, and ComfyUI's official templates.

- shipped: `workflows/<id>.json` in the package (format in workflows/README.md), read once;
- user: `<data dir>/workflows/<id>.json`, same format, written by `save`/`update`, re-read when the
  folder changes; a user file with the id of a shipped workflow replaces it;
- template: ComfyUI's official templates (`comfyui_workflow_templates`), read-only, listed from
  their index with id `template:<name>` and served as they are (ComfyUI's UI format, which
  `POST /prompt` cannot run).

Shipped and user workflows are in ComfyUI's API format (what `POST /prompt` takes; `workflow_format`
checks it). A broken file is skipped, logged once, and listed in `errors`. All file access runs off
the event loop.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from ..errors import DashboardError, Forbidden, InvalidWorkflow, WorkflowNotFound
from ..threads import LOOP_DEFAULT, Threads
from .catalogue import Catalogue
from .preset_schema import CATEGORY_BY_TYPE
from .templates import template_entries, template_preset_id, templates_dir
from .watch import folder_signature
from .workflow_format import check_api_workflow, required_models

log = logging.getLogger("dashboard.workflows")

TEMPLATE_PREFIX = "template:"
SOURCES = ("shipped", "user", "template")
_MAX_FILE_BYTES = 32 * 1024**2
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}

FILE_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": _FILE_NAME.pattern},
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "category": {"type": "string", "minLength": 1, "maxLength": 60},
        "description": {"type": "string", "maxLength": 2000},
        "preset": {"type": ["string", "null"], "maxLength": 80},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 50},
        "workflow": {"type": "object"},
    },
    "required": ["name", "workflow"],
}
_FILE_VALIDATOR = Draft202012Validator(FILE_SCHEMA)


def slugify(name: str) -> str:
    """A safe id from a name: lowercase ASCII letters, digits and underscores, at most 64 characters."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "_", text).strip("_")[:64].strip("_") or "workflow"
    return f"{slug}_workflow" if slug in _RESERVED else slug


@dataclass(frozen=True)
class Workflow:
    """One workflow of the library; `workflow` is None for templates (read when asked for)."""

    id: str
    name: str
    category: str
    description: str
    preset: str | None
    source: str
    format: str
    path: str
    file: Path
    tags: tuple[str, ...] = ()
    workflow: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def search_text(self) -> str:
        return " ".join([self.id, self.name, self.description, *self.tags]).lower()

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "category": self.category, "description": self.description,
                "preset": self.preset, "path": self.path, "source": self.source, "format": self.format,
                "tags": list(self.tags)}


@dataclass
class _Loaded:
    workflows: dict[str, Workflow] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)


class WorkflowLibrary:
    """Lists, reads, saves and checks workflows. `index` is the ModelIndex (`refresh()`, `get(path)`)."""

    def __init__(self, shipped_dir: Path, user_dir: Path, catalogue: Catalogue, index: Any,
                 templates: bool = True, threads: Threads = LOOP_DEFAULT) -> None:
        self.shipped_dir = shipped_dir
        self.threads = threads
        self.user_dir = user_dir
        self.catalogue = catalogue
        self.index = index
        self.use_templates = templates
        self._shipped: _Loaded | None = None
        self._templates: _Loaded | None = None
        self._user = _Loaded()
        self._user_signature: tuple | None = None
        self._lock = asyncio.Lock()
        self._logged: set[str] = set()

    async def list(self, category: str | None = None, search: str | None = None,
                   source: str | None = None) -> dict[str, Any]:
        """The body of GET /api/workflows: every filter given must hold."""
        everything = await self._all()
        selected = list(everything.values())
        if category is not None:
            selected = [w for w in selected if w.category.lower() == category.lower()]
        if source is not None:
            selected = [w for w in selected if w.source == source]
        for term in search.lower().split() if search else ():
            selected = [w for w in selected if term in w.search_text]
        return {
            "workflows": [w.summary() for w in selected],
            "total": len(everything),
            "filtered": len(selected),
            "categories": sorted({w.category for w in everything.values()}),
            "errors": self._errors(),
        }

    async def detail(self, workflow_id: str) -> dict[str, Any]:
        """The body of GET /api/workflows/{id}: its metadata and its JSON."""
        entry = await self.require(workflow_id)
        return {**entry.summary(), "workflow": await self._content(entry)}

    async def executable(self, workflow_id: str) -> dict[str, Any]:
        """A copy of the API-format workflow with this id, ready to submit; INVALID_WORKFLOW for templates."""
        entry = await self.require(workflow_id)
        if entry.format != "api":
            raise InvalidWorkflow(f"{entry.id} is an official ComfyUI template in the UI format, which cannot be "
                                  "queued directly: open it in ComfyUI's editor, or save its API export with "
                                  "POST /api/workflows", {"workflow_id": entry.id, "format": entry.format})
        return copy.deepcopy(entry.workflow)

    async def save(self, name: str, workflow: Any, category: str = "Custom", description: str = "",
                   preset: str | None = None, tags: list[str] | None = None) -> dict[str, Any]:
        """Save a new user workflow under an id made from its name (a suffix when taken)."""
        check_api_workflow(workflow)
        async with self._lock:
            taken = set(await self._all())
            base = slugify(name)
            workflow_id, n = base, 1
            while workflow_id in taken:
                n += 1
                workflow_id = f"{base}_{n}"
            data = {"id": workflow_id, "name": name.strip(), "category": category.strip() or "Custom",
                    "description": description.strip(), "preset": preset, "tags": list(tags or []),
                    "workflow": workflow}
            await self._write(self.user_dir / f"{workflow_id}.json", data)
        return {"id": workflow_id, "status": "saved", "path": _user_path(workflow_id), "name": data["name"]}

    async def update(self, workflow_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a user workflow's name, category, description, preset, tags or JSON; its id stays."""
        if "workflow" in changes:
            check_api_workflow(changes["workflow"])
        async with self._lock:
            entry = self._writable(await self.require(workflow_id), "changed")
            data = {"id": entry.id, "name": entry.name, "category": entry.category, "description": entry.description,
                    "preset": entry.preset, "tags": list(entry.tags), "workflow": entry.workflow}
            data.update({k: v.strip() if isinstance(v, str) else v for k, v in changes.items() if k in data})
            await self._write(entry.file, data)
        return {"id": entry.id, "status": "saved", "path": entry.path, "name": data["name"]}

    async def delete(self, workflow_id: str) -> dict[str, Any]:
        """Delete a user workflow (shipped and template ones are read-only)."""
        async with self._lock:
            entry = self._writable(await self.require(workflow_id), "deleted")
            await self.threads.run(_unlink, entry.file)
            self._user_signature = None
        return {"id": entry.id, "status": "deleted"}

    async def requirements(self, workflow_id: str) -> dict[str, Any]:
        """The model files a workflow loads, which are missing, and the presets that provide them."""
        entry = await self.require(workflow_id)
        models = required_models(await self._content(entry), entry.format)
        await self.index.refresh()
        await self.catalogue.refresh()
        providers: dict[str, list[str]] = {}
        for preset in self.catalogue.presets.values():
            for f in preset.files:
                providers.setdefault(f.path, []).append(preset.id)
        missing: list[str] = []
        coverage: dict[str, int] = {}
        for model in models:
            model["installed"] = self.index.get(model["path"]) is not None
            model["presets"] = _ranked(providers.get(model["path"], []), entry.preset)
            if not model["installed"]:
                missing.append(model["path"])
                for preset_id in model["presets"]:
                    coverage[preset_id] = coverage.get(preset_id, 0) + 1
        presets = sorted(coverage, key=lambda p: (p != entry.preset, -coverage[p], p))
        return {"workflow_id": entry.id, "preset": entry.preset, "models": models, "missing": missing,
                "presets": presets, "satisfied": not missing}

    async def require(self, workflow_id: str) -> Workflow:
        """The workflow with this id, or 404 WORKFLOW_NOT_FOUND."""
        entry = (await self._all()).get(workflow_id)
        if entry is None:
            raise WorkflowNotFound(f"No workflow with id {workflow_id!r}", {"workflow_id": workflow_id})
        return entry

    @staticmethod
    def _writable(entry: Workflow, verb: str) -> Workflow:
        if entry.source != "user":
            raise Forbidden(f"{entry.id} is a {entry.source} workflow and cannot be {verb}; "
                            "save a copy with POST /api/workflows", {"workflow_id": entry.id, "source": entry.source})
        return entry

    async def _all(self) -> dict[str, Workflow]:
        run = self.threads.run
        if self._shipped is None:
            self._shipped = await run(_load_dir, self.shipped_dir, "shipped")
        if self._templates is None:
            self._templates = await run(_load_templates, self.use_templates)
        signature = await run(folder_signature, self.user_dir, ("*.json",))
        if signature != self._user_signature:
            self._user = await run(_load_dir, self.user_dir, "user")
            self._user_signature = signature
        if self._templates.workflows:
            await self.catalogue.refresh()
        merged: dict[str, Workflow] = {}
        for entry in self._templates.workflows.values():
            preset = template_preset_id(entry.id[len(TEMPLATE_PREFIX):])
            merged[entry.id] = entry if preset not in self.catalogue.presets else _with_preset(entry, preset)
        merged.update(self._shipped.workflows)
        merged.update(self._user.workflows)
        order = {source: i for i, source in enumerate(SOURCES)}
        return dict(sorted(merged.items(), key=lambda kv: (order[kv[1].source], kv[1].category, kv[1].name.lower())))

    def _errors(self) -> list[dict[str, str]]:
        errors = [*self._shipped.errors, *self._templates.errors, *self._user.errors]
        for error in errors:
            key = f"{error['file']}: {error['error']}"
            if key not in self._logged:
                self._logged.add(key)
                log.warning("Workflow skipped: %s", key)
        return errors

    async def _content(self, entry: Workflow) -> dict[str, Any]:
        if entry.workflow is not None:
            return entry.workflow
        try:
            return await self.threads.run(_read_json, entry.file)
        except (OSError, ValueError) as exc:
            raise WorkflowNotFound(f"Workflow {entry.id} could not be read: {exc}",
                                   {"workflow_id": entry.id}) from None

    async def _write(self, path: Path, data: dict[str, Any]) -> None:
        await self.threads.run(_write_json, path, data)
        self._user_signature = None


def _ranked(preset_ids: list[str], declared: str | None) -> list[str]:
    return sorted(preset_ids, key=lambda p: (p != declared, p.startswith("TEMPLATE_"), p))


def _with_preset(entry: Workflow, preset: str) -> Workflow:
    return dataclasses.replace(entry, preset=preset)


def _user_path(workflow_id: str) -> str:
    return f"workflows/user/{workflow_id}.json"


def _read_json(path: Path) -> Any:
    if path.stat().st_size > _MAX_FILE_BYTES:
        raise ValueError("file is larger than 32 MiB")
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.write("\n")
        os.replace(temp, path)
    except BaseException:
        _unlink(Path(temp))
        raise


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _load_dir(folder: Path, source: str) -> _Loaded:
    loaded = _Loaded()
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for path in files:
        try:
            entry = _load_file(path, source)
        except (OSError, ValueError, DashboardError) as exc:
            message = exc.message if isinstance(exc, DashboardError) else str(exc)
            loaded.errors.append({"file": f"{source}:{path.name}", "error": message[:300]})
            continue
        loaded.workflows[entry.id] = entry
    return loaded


def _load_file(path: Path, source: str) -> Workflow:
    """One shipped or user workflow file; raises ValueError (or INVALID_WORKFLOW) naming the problem."""
    if not _FILE_NAME.match(path.stem):
        raise ValueError("file name must be letters, digits, '_', '.' or '-' (at most 100)")
    data = _read_json(path)
    error = next(iter(sorted(_FILE_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        raise ValueError(f"{'.'.join(str(p) for p in error.absolute_path) or 'file'}: {error.message[:200]}")
    if data.get("id", path.stem) != path.stem:
        raise ValueError(f"id {data['id']!r} does not match the file name")
    check_api_workflow(data["workflow"])
    return Workflow(
        id=path.stem, name=data["name"], category=data.get("category") or "Custom",
        description=data.get("description", ""), preset=data.get("preset"), source=source, format="api",
        path=f"workflows/{path.name}" if source == "shipped" else _user_path(path.stem), file=path,
        tags=tuple(data.get("tags", [])), workflow=data["workflow"],
    )


def _load_templates(enabled: bool) -> _Loaded:
    loaded = _Loaded()
    folder = templates_dir() if enabled else None
    if folder is None:
        return loaded
    for entry in template_entries(folder):
        name = entry["name"]
        workflow_id = TEMPLATE_PREFIX + name
        loaded.workflows[workflow_id] = Workflow(
            id=workflow_id, name=str(entry.get("title") or name),
            category=CATEGORY_BY_TYPE.get(entry.get("mediaType"), str(entry["group"] or "Templates")),
            description=str(entry.get("description") or ""), preset=None, source="template", format="ui",
            path=f"templates/{name}.json", file=folder / f"{name}.json",
            tags=tuple(str(t).lower() for t in entry.get("tags") or [])[:50],
        )
    return loaded
