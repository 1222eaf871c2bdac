"""Files with the same hash in different places, and which copy a cleanup keeps.

The copy kept is the one a preset lists at its own path (a preset's file is where its workflows
load it), else the one in its type's first folder (where ComfyUI looks first), else the shortest
path. A copy a preset lists is never removed by a cleanup unless forced, so several preset-owned
copies may all stay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..model_index import ROOT, SIZE, Row


def duplicate_groups(rows: Mapping[str, Row], hashes: Mapping[str, str], owners: Callable[[str], list[str]],
                     first_roots: Mapping[str, str]) -> list[dict[str, Any]]:
    """Groups of two or more files with one sha256, biggest saving first: `{sha256, size_bytes,
    files: [{path, presets, keep}], reclaimable_bytes}`; the file to keep first in `files`."""
    by_hash: dict[str, list[str]] = {}
    for path, digest in hashes.items():
        row = rows.get(path)
        if row is not None and row[SIZE] > 0:
            by_hash.setdefault(digest, []).append(path)
    groups = []
    for digest, paths in by_hash.items():
        if len(paths) < 2:
            continue
        size = rows[paths[0]][SIZE]

        def rank(path: str) -> tuple:
            folder_type = path.partition("/")[0]
            return (not owners(path), rows[path][ROOT] != first_roots.get(folder_type), len(path), path)

        ordered = sorted(paths, key=rank)
        files = [{"path": p, "presets": owners(p), "keep": i == 0 or bool(owners(p))} for i, p in enumerate(ordered)]
        removable = sum(1 for f in files if not f["keep"])
        groups.append({"sha256": digest, "size_bytes": size, "files": files, "reclaimable_bytes": removable * size})
    groups.sort(key=lambda g: (-g["reclaimable_bytes"], g["sha256"]))
    return groups
