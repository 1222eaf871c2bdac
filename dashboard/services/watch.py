"""Cheap change detection for folders users edit by hand (user presets, user workflows)."""

from __future__ import annotations

from pathlib import Path


def folder_signature(folder: Path, patterns: tuple[str, ...], recursive: bool = False) -> tuple:
    """Names, mtimes and sizes of the matching files: it changes when any file is added, removed or edited."""
    try:
        found = (p for pattern in patterns for p in (folder.rglob(pattern) if recursive else folder.glob(pattern)))
        return tuple(sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size) for p in found))
    except OSError:
        return ()
