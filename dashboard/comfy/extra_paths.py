"""ComfyUI's `extra_model_paths.yaml`, read the way ComfyUI reads it (utils/extra_config.py).

    a111:                                 # a section; any name
        base_path: ../stable-diffusion    # optional; relative to the yaml's folder; ~ and $VARS expanded
        is_default: true                  # optional; these folders go first (downloads land there)
        checkpoints: models/Stable-diffusion
        loras: |                          # several folders: one per line (a list works too)
            models/Lora
            models/LyCORIS

A folder path is relative to `base_path` when the section has one, else to the yaml's folder.
Legacy names are mapped (`unet` -> `diffusion_models`, `clip` -> `text_encoders`); `custom_nodes`
is not a model folder and is skipped. Used by the standalone server; inside ComfyUI, ComfyUI has
already read its own yaml and the dashboard asks `folder_paths`. Blocking: call once at start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import ConfigError

#: Names ComfyUI itself maps (folder_paths.map_legacy); `t2i_adapter` is only a folder, never a key.
_LEGACY_KEYS = {"unet": "diffusion_models", "clip": "text_encoders"}
_NOT_MODELS = {"custom_nodes"}
_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ExtraModelPath:
    """One folder the yaml adds to a folder type."""

    folder_type: str
    path: Path
    is_default: bool = False


def load_extra_model_paths(yaml_path: Path) -> list[ExtraModelPath]:
    """Every folder `yaml_path` adds, in file order. Raises ConfigError naming what is wrong."""
    where = f"extra model paths {str(yaml_path)!r}"
    try:
        if yaml_path.stat().st_size > _MAX_BYTES:
            raise ConfigError(f"{where}: file is larger than 1 MiB")
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: unreadable: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_extra_model_paths(config, Path(os.path.abspath(yaml_path)).parent, where)


def parse_extra_model_paths(config: object, yaml_dir: Path, where: str = "extra model paths") -> list[ExtraModelPath]:
    """The folders of an already-loaded yaml document whose file lives in `yaml_dir`."""
    if config is None:
        return []
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: expected sections (a mapping at the top level), got {_kind(config)}")
    found: list[ExtraModelPath] = []
    for section, conf in config.items():
        if conf is None:
            continue
        if not isinstance(conf, dict):
            raise ConfigError(f"{where}: section {section!r} must be a mapping of folder types, got {_kind(conf)}")
        found.extend(_section(str(section), conf, yaml_dir, where))
    return found


def _section(section: str, conf: dict, yaml_dir: Path, where: str) -> list[ExtraModelPath]:
    base_path = conf.get("base_path")
    if base_path is not None:
        if not isinstance(base_path, str) or not base_path.strip():
            raise ConfigError(f"{where}: section {section!r}: base_path must be a path, got {_kind(base_path)}")
        base_path = os.path.expandvars(os.path.expanduser(base_path.strip()))
        if not os.path.isabs(base_path):
            base_path = os.path.join(yaml_dir, base_path)
    is_default = conf.get("is_default", False)
    if not isinstance(is_default, bool):
        raise ConfigError(f"{where}: section {section!r}: is_default must be true or false, got {is_default!r}")
    found: list[ExtraModelPath] = []
    for key, value in conf.items():
        if key in ("base_path", "is_default"):
            continue
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{where}: section {section!r}: folder type {key!r} is not a name")
        if key in _NOT_MODELS:
            continue
        folder_type = _LEGACY_KEYS.get(key, key)
        for line in _paths(value, f"{where}: section {section!r}, {key!r}"):
            full = os.path.join(base_path or yaml_dir, line)  # an absolute line stays as it is
            found.append(ExtraModelPath(folder_type, Path(os.path.normpath(full)), is_default))
    return found


def _paths(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        lines = value.split("\n")
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        lines = value
    else:
        raise ConfigError(f"{where}: expected a path, several paths one per line, or a list of paths; "
                          f"got {_kind(value)}")
    paths = [line.strip() for line in lines if line.strip()]
    if any("\0" in p for p in paths):
        raise ConfigError(f"{where}: not a valid path")
    return paths


def add_extra_paths(roots: Mapping[str, Iterable[Path]], extra: Iterable[ExtraModelPath]) -> dict[str, list[Path]]:
    """`roots` with the extra folders added as ComfyUI's add_model_folder_path does: appended, or
    moved/put first when `is_default`; a folder already listed for its type is not listed twice."""
    merged = {name: list(paths) for name, paths in roots.items()}
    for item in extra:
        paths = merged.setdefault(item.folder_type, [])
        if item.path in paths:
            if item.is_default and paths[0] != item.path:
                paths.remove(item.path)
                paths.insert(0, item.path)
        elif item.is_default:
            paths.insert(0, item.path)
        else:
            paths.append(item.path)
    return merged


def _kind(value: object) -> str:
    if isinstance(value, (str, int, float, bool)):
        return repr(value)
    return type(value).__name__
