"""What the dashboard installed, kept beside each file: `<name>.dashboard.json`.

The record says what the file is (its sha256, size and mtime when it was verified, where it came
from, which presets own it), so which files are installed and verified can be read from the
model folders themselves: after the database is lost or damaged, by another process, or on
another machine mounting the same volume. Records are written atomically; a record whose file
is gone or whose size or mtime changed no longer vouches for it. ComfyUI and the model list
ignore them (`.json` is no model extension). Blocking functions: call them off the event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("dashboard.downloads")

SUFFIX = ".dashboard.json"
#: What a record keeps besides the file's own size and mtime.
FIELDS = ("sha256", "etag", "commit_hash", "preset_id", "installed_at", "source")


def record_path(model: Path) -> Path:
    """The record beside a model file."""
    return model.with_name(model.name + SUFFIX)


def write_record(model: Path, record: dict[str, Any]) -> None:
    """Write the record of a verified `model` (its size and mtime as they are now), atomically."""
    stat = model.stat()
    content = {**{k: record.get(k) for k in FIELDS}, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    target = record_path(model)
    partial = target.with_name(f"{target.name}.{os.getpid()}")
    partial.write_text(json.dumps(content))
    os.replace(partial, target)


def remove_record(model: Path) -> None:
    """Delete a model's record, if it has one."""
    with contextlib.suppress(FileNotFoundError):
        record_path(model).unlink()


def read_records(roots: Iterable[tuple[str, Path]]) -> dict[str, dict[str, Any]]:
    """Every record under `(folder type, root)` pairs whose file is still as it was verified:
    model-folder path -> {path, size, sha256, etag, commit_hash, preset_id, installed_at}."""
    found: dict[str, dict[str, Any]] = {}
    for folder_type, root in roots:
        for directory, _dirs, names in os.walk(root):
            for name in names:
                if not name.endswith(SUFFIX):
                    continue
                model = Path(directory) / name[:-len(SUFFIX)]
                path = f"{folder_type}/{model.relative_to(root).as_posix()}"
                record = _valid(model)
                if record is not None:
                    found.setdefault(path, {**record, "path": path})
    return found


def _valid(model: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(record_path(model).read_text())
        stat = model.stat()
        if not isinstance(record, dict) or (record.get("size"), record.get("mtime_ns")) != (
                stat.st_size, stat.st_mtime_ns):
            return None
        return {"size": stat.st_size, **{k: record.get(k) for k in FIELDS if k != "source"}}
    except (OSError, ValueError):
        return None
