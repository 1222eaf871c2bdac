"""What the dashboard installed, kept beside each file: `<name>.dashboard.json`.

The record says what the file is (its sha256, size and mtime when it was verified, where it came
from, which presets own it), so which files are installed and verified can be read from the
model folders themselves: after the database is lost or damaged, by another process, or on
another machine mounting the same volume. Records are written atomically; a record whose file
is gone or whose size or mtime changed no longer vouches for it (the file is damaged). ComfyUI and the model list
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


def write_record(model: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write the record of a verified `model` (its size and mtime as they are now), atomically;
    returns what was written."""
    stat = model.stat()
    content = {**{k: record.get(k) for k in FIELDS}, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    target = record_path(model)
    partial = target.with_name(f"{target.name}.{os.getpid()}")
    partial.write_text(json.dumps(content))
    os.replace(partial, target)
    return content


def read_record(model: Path) -> dict[str, Any] | None:
    """The record beside `model`, as written (None: none, unreadable, or its file is gone)."""
    return _read(model)


def remove_record(model: Path) -> None:
    """Delete a model's record, if it has one."""
    with contextlib.suppress(FileNotFoundError):
        record_path(model).unlink()


def read_records(roots: Iterable[tuple[str, Path]]) -> dict[str, dict[str, Any]]:
    """Every readable record under `(folder type, root)` pairs whose file still exists, as written:
    model-folder path -> {path, size, mtime_ns, sha256, etag, commit_hash, preset_id, installed_at, source}
    (`vouches_for` tells whether the file is still what was verified)."""
    found: dict[str, dict[str, Any]] = {}
    for folder_type, root in roots:
        for directory, _dirs, names in os.walk(root):
            for name in names:
                if not name.endswith(SUFFIX):
                    continue
                model = Path(directory) / name[:-len(SUFFIX)]
                path = f"{folder_type}/{model.relative_to(root).as_posix()}"
                record = _read(model)
                if record is not None:
                    found.setdefault(path, {**record, "path": path})
    return found


def vouches_for(record: dict[str, Any] | None, size: int, modified: float, sha256: str | None = None) -> bool:
    """Whether a verified-file record still stands for a file of `size` bytes modified at `modified`
    (seconds): the same size, the same mtime when the record has one, and `sha256` if one is expected."""
    if record is None or record["size"] != size or (sha256 is not None and record.get("sha256") != sha256):
        return False
    recorded = record.get("mtime_ns")
    return recorded is None or abs(recorded / 1e9 - modified) < 1e-3


def _read(model: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(record_path(model).read_text())
        if not model.exists() or not isinstance(record, dict) or not isinstance(record.get("size"), int):
            return None
    except (OSError, ValueError):
        return None
    return {k: record.get(k) for k in ("size", "mtime_ns", *FIELDS)}


def source_of(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where a recorded file came from, with its `kind` (`huggingface`, `civitai`, `url`); None when unknown."""
    source = (record or {}).get("source")
    if not isinstance(source, dict) or not (source.get("url") or source.get("repo")):
        return None
    kind = source.get("kind") or ("huggingface" if source.get("repo") else "url")
    return {**{k: v for k, v in source.items() if v is not None}, "kind": kind}
