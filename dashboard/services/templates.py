"""ComfyUI's official workflow templates (`comfyui_workflow_templates`), read as presets.

Both layouts are supported: the old one (0.1.x: JSON files in the package's `templates/`,
`get_templates_path()`), and the new one (0.11.x+: the JSON files in the
`comfyui_workflow_templates_json` package). Template nodes declare their models as
`properties.models = [{name, url, directory}]`, also inside subgraphs. Blocking: call in a thread.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .preset_schema import CATEGORY_BY_TYPE, Preset, PresetError, parse_preset

log = logging.getLogger("dashboard.presets")

_GB = 1024**3
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,200}$")


def templates_dir() -> Path | None:
    """The folder holding the official template JSON files, or None when not installed."""
    try:
        package = importlib.import_module("comfyui_workflow_templates_json")
        folder = Path(next(iter(package.__path__))) / "templates"
        if folder.is_dir():
            return folder
    except (ImportError, StopIteration):
        pass
    try:
        legacy = importlib.import_module("comfyui_workflow_templates")
        return Path(legacy.get_templates_path())
    except Exception:  # not installed, or the new layout where get_templates_path() raises
        return None


def load_template_presets(folder: Path, folder_types: set[str]) -> tuple[list[Preset], list[dict[str, str]]]:
    """Every template in `folder` that declares models, as a preset; and the templates that could not be used."""
    presets: list[Preset] = []
    errors: list[dict[str, str]] = []
    for entry in template_entries(folder):
        path = folder / f"{entry['name']}.json"
        try:
            models = template_models(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            errors.append({"file": f"template:{entry['name']}", "error": f"unreadable: {exc}"})
            continue
        if not models:
            continue
        unknown = {m["directory"] for m in models} - folder_types
        if unknown:  # made for a newer ComfyUI than this one: it could not load these models anyway
            log.debug("Template %s skipped: unknown model folders %s", entry["name"], sorted(unknown))
            continue
        try:
            presets.append(_preset(entry, models, folder_types))
        except PresetError as exc:
            errors.append({"file": f"template:{entry['name']}", "error": str(exc)})
    return presets, errors


def ui_nodes(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a UI-format workflow, those inside its subgraphs included."""
    nodes = list(workflow.get("nodes") or [])
    definitions = workflow.get("definitions")
    for subgraph in (definitions.get("subgraphs") or [] if isinstance(definitions, dict) else []):
        if isinstance(subgraph, dict) and isinstance(subgraph.get("nodes"), list):
            nodes.extend(subgraph["nodes"])
    return [node for node in nodes if isinstance(node, dict)]


def template_models(workflow: dict[str, Any]) -> list[dict[str, str]]:
    """The distinct `{name, url, directory}` models a UI-format workflow declares."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for node in ui_nodes(workflow):
        properties = node.get("properties")
        for model in (properties.get("models") or [] if isinstance(properties, dict) else []):
            if isinstance(model, dict) and {"name", "url", "directory"} <= model.keys() \
                    and all(isinstance(model[k], str) for k in ("name", "url", "directory")):
                seen.setdefault((model["directory"], model["name"]), model)
    return list(seen.values())


def template_preset_id(name: str) -> str:
    """The preset id of a template: TEMPLATE_ and its name in UPPER_SNAKE."""
    return "TEMPLATE_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")[:70]


def template_entries(folder: Path) -> Iterator[dict[str, Any]]:
    """Each template of the folder's index.json whose JSON file is there, with its group's title as `group`."""
    try:
        index = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("Official templates: no usable index.json in %s (%s)", folder, exc)
        return
    for group in index if isinstance(index, list) else []:
        if not isinstance(group, dict):
            continue
        for entry in group.get("templates") or []:
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and _TEMPLATE_NAME.match(name) and (folder / f"{name}.json").is_file():
                yield {**entry, "group": group.get("title") or group.get("category") or ""}


def _preset(entry: dict[str, Any], models: list[dict[str, str]], folder_types: set[str]) -> Preset:
    category = CATEGORY_BY_TYPE.get(entry.get("mediaType"), "Image Generation")
    size = float(entry.get("size") or 0)
    total = size if size > 10_000 else size * _GB  # newer indexes give bytes, older ones GB
    each = max(1, int(total / len(models))) if total else 1  # the index gives a total only: an estimate
    data = {
        "id": template_preset_id(entry["name"]),
        "name": entry.get("title") or entry["name"],
        "category": category,
        "type": category.split()[0].lower(),
        "description": entry.get("description") or "",
        "use_case": f"Official ComfyUI template: {entry.get('title') or entry['name']}",
        "tags": [str(t).lower() for t in entry.get("tags") or []][:50],
        "files": [{"path": f"{m['directory']}/{m['name']}", "url": m["url"].replace("?download=true", ""),
                   "size": each} for m in models],
    }
    if isinstance(entry.get("vram"), (int, float)) and entry["vram"] > 0:
        data["requirements"] = {"vram_gb": round(entry["vram"], 1)}
    # A template names the file its workflow loads, which may differ from the URL's: keep the template's.
    return parse_preset(data, source="template", origin=entry["name"], folder_types=folder_types, renames=True)
