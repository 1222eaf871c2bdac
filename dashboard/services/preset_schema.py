"""What a preset is, and how one is read from YAML data and checked.

A preset file holds one preset (schema in presets/README.md). `parse_preset` checks structure with
jsonschema, then what a schema cannot say: paths stay inside the models root, folder types are
known, the saved name is the downloaded file's name, URLs are download URLs. A folder type that
ComfyUI has in some version but this ComfyUI lacks is no error: the preset needs a newer ComfyUI,
and says which folders (`missing_folders`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from jsonschema import Draft202012Validator

from ..comfy.folders import FOLDER_TYPES, canonical_type

CATEGORIES = {"Video Generation": "video", "Image Generation": "image", "Audio Generation": "audio"}
CATEGORY_BY_TYPE = {kind: category for category, kind in CATEGORIES.items()}
HF_HOSTS = {"huggingface.co", "hf.co"}

_FILE = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "minLength": 3, "maxLength": 400},
        "source": {
            "type": "object",
            "properties": {
                "repo": {"type": "string", "pattern": r"^[\w.-]+/[\w.-]+$"},
                "file": {"type": "string", "minLength": 1, "maxLength": 400},
                "revision": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^[^\s/]+$"},
            },
            "required": ["repo", "file"],
            "additionalProperties": False,
        },
        "url": {"type": "string", "pattern": "^https?://", "maxLength": 2000},
        "size": {"type": "integer", "minimum": 1},
        "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "optional": {"type": "boolean"},
    },
    "required": ["path", "size"],
    "oneOf": [{"required": ["source"]}, {"required": ["url"]}],
    "additionalProperties": False,
}

PRESET_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9_]{0,79}$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "category": {"enum": list(CATEGORIES)},
        "type": {"enum": list(CATEGORIES.values())},
        "description": {"type": "string", "maxLength": 2000},
        "use_case": {"type": "string", "maxLength": 500},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 50},
        "license": {"type": "string", "maxLength": 100},
        "gated": {"type": "boolean"},
        "requirements": {
            "type": "object",
            "properties": {"vram_gb": {"type": "number", "minimum": 0, "maximum": 1024}},
            "additionalProperties": False,
        },
        "dependencies": {"type": "array", "items": {"type": "string"}, "maxItems": 50},
        "workflows": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
        "files": {"type": "array", "items": _FILE, "minItems": 1, "maxItems": 200},
    },
    "required": ["id", "name", "category", "type", "files"],
    "additionalProperties": False,
}
_VALIDATOR = Draft202012Validator(PRESET_SCHEMA)


class PresetError(ValueError):
    """A preset that cannot be used; the message says why."""


@dataclass(frozen=True)
class PresetFile:
    """One file of a preset: where it goes (`folder`/`relpath`) and where it comes from."""

    folder: str
    relpath: str
    size: int
    optional: bool = False
    sha256: str | None = None
    repo: str | None = None
    repo_file: str | None = None
    revision: str = "main"
    url: str | None = None

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.relpath}"

    @property
    def name(self) -> str:
        return posixpath.basename(self.relpath)


@dataclass(frozen=True)
class Preset:
    """A named bundle of model files that make one kind of generation work."""

    id: str
    name: str
    category: str
    type: str
    files: tuple[PresetFile, ...]
    description: str = ""
    use_case: str = ""
    tags: tuple[str, ...] = ()
    license: str | None = None
    gated: bool = False
    vram_gb: float | None = None
    dependencies: tuple[str, ...] = ()
    workflows: tuple[str, ...] = ()
    source: str = "shipped"
    origin: str = ""
    search_text: str = field(default="", compare=False)
    #: Model folder types its files (or its dependencies' files) need that this ComfyUI does not have.
    missing_folders: tuple[str, ...] = ()

    @property
    def download_bytes(self) -> int:
        """Bytes of the files that are always installed (optional ones excluded)."""
        return sum(f.size for f in self.files if not f.optional)


def parse_preset(data: Any, *, source: str, origin: str, folder_types: set[str], renames: bool = False) -> Preset:
    """Check and build a Preset from parsed YAML; raises PresetError naming the problem.

    Unless `renames`, a file must be saved under its source's file name. `folder_types` are this
    ComfyUI's; a file in another of ComfyUI's folder types makes the preset one for a newer ComfyUI.
    """
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.absolute_path) or "preset"
        raise PresetError(f"{where}: {error.message[:300]}")
    if CATEGORIES[data["category"]] != data["type"]:
        raise PresetError(f"type {data['type']!r} does not match category {data['category']!r}")
    files = tuple(_parse_file(i, f, folder_types | FOLDER_TYPES.keys(), renames) for i, f in enumerate(data["files"]))
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise PresetError("files: the same path is listed twice")
    tags = tuple(t.lower() for t in data.get("tags", []))
    preset = Preset(
        id=data["id"], name=data["name"].strip(), category=data["category"], type=data["type"], files=files,
        description=data.get("description", "").strip(), use_case=data.get("use_case", "").strip(), tags=tags,
        license=data.get("license"), gated=data.get("gated", False),
        vram_gb=(data.get("requirements") or {}).get("vram_gb"),
        dependencies=tuple(data.get("dependencies", [])), workflows=tuple(data.get("workflows", [])),
        source=source, origin=origin,
        search_text=" ".join([data["name"], data.get("description", ""), *tags]).lower(),
        missing_folders=tuple(sorted({f.folder for f in files} - folder_types)),
    )
    if preset.id in preset.dependencies:
        raise PresetError("dependencies: a preset cannot depend on itself")
    return preset


def _parse_file(index: int, data: dict, folder_types: set[str], renames: bool) -> PresetFile:
    where = f"files.{index}"
    folder, relpath = split_model_path(data["path"], folder_types, where)
    name = posixpath.basename(relpath)
    if "source" in data:
        source = data["source"]
        repo_file = source["file"]
        _check_relative(repo_file, f"{where}.source.file")
        repo, revision, url = source["repo"], source.get("revision", "main"), None
    else:
        repo, repo_file, revision, url = parse_download_url(data["url"], where)
        if repo is not None:
            url = None  # a Hugging Face URL becomes a source, so tokens and endpoints apply
    source_name = posixpath.basename(repo_file) if repo_file else _url_file_name(url)
    if not renames and source_name is not None and source_name != name:
        raise PresetError(f"{where}: saved as {name!r} but the source file is {source_name!r}")
    return PresetFile(folder=folder, relpath=relpath, size=data["size"], optional=data.get("optional", False),
                      sha256=(data.get("sha256") or "").lower() or None, repo=repo, repo_file=repo_file,
                      revision=revision or "main", url=url)


def split_model_path(path: str, folder_types: set[str], where: str = "path") -> tuple[str, str]:
    """`<folder type>/<relative path>` -> (canonical type, relative path); refuses anything unsafe."""
    _check_relative(path, where)
    folder, _, relpath = path.partition("/")
    canonical = canonical_type(folder) if folder not in folder_types else folder
    if canonical is None or canonical not in folder_types:
        raise PresetError(f"{where}: unknown model folder {folder!r}")
    if not relpath:
        raise PresetError(f"{where}: expected <folder type>/<file name>, got {path!r}")
    return canonical, relpath


def _check_relative(path: str, where: str) -> None:
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) or "\\" in path or "\0" in path:
        raise PresetError(f"{where}: {path!r} must be a relative path with forward slashes")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PresetError(f"{where}: {path!r} must not contain empty, '.' or '..' parts")


def parse_download_url(url: str, where: str = "url") -> tuple[str | None, str | None, str | None, str]:
    """A download URL -> (repo, file, revision, url); Hugging Face `/resolve/` URLs are taken apart.

    `/blob/` (a web page) is turned into `/resolve/`, and `?download=true` is dropped.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PresetError(f"{where}: {url!r} is not an http(s) URL")
    if parsed.hostname not in HF_HOSTS:
        return None, None, None, url
    parts = unquote(parsed.path).strip("/").split("/")
    if len(parts) >= 5 and parts[2] in ("resolve", "blob"):
        return f"{parts[0]}/{parts[1]}", "/".join(parts[4:]), parts[3], url
    raise PresetError(f"{where}: {url!r} is not a Hugging Face file download URL (…/resolve/<rev>/<file>)")


def _url_file_name(url: str | None) -> str | None:
    if url is None:
        return None
    name = posixpath.basename(unquote(urlparse(url).path))
    # Download endpoints such as Civitai's /api/download/models/<id> name the file in a header.
    return name if "." in name else None
