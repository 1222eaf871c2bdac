"""Checking files against what the dashboard verified: `POST /api/models/verify`.

Each file is hashed again (sha256, in a download thread at download priority, one file at a time,
off the event loop) and compared with its record: `ok` (and its record renewed, so a file that was
only touched counts as verified again), `damaged` (the bytes differ from what was verified), or
`unverified` (the dashboard never verified it, or knows no hash for it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ...errors import ModelNotFound
from .limits import download_threads
from .records import write_record

READ = 8 * 1024 * 1024


async def verify_files(paths: list[str], targets: dict[str, Path], installed: dict[str, dict[str, Any]]
                       ) -> dict[str, Any]:
    """The body of POST /api/models/verify for model-folder `paths` (`targets`: where each is)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-verify",
                              initializer=download_threads.register)
    loop = asyncio.get_running_loop()
    files = []
    try:
        for path in paths:
            record = installed.get(path)
            try:
                sha256 = await loop.run_in_executor(pool, _sha256, targets[path])
            except FileNotFoundError:
                raise ModelNotFound(f"No model {path!r}", {"path": path}) from None
            expected = record.get("sha256") if record else None
            status = "unverified" if expected is None else "ok" if sha256 == expected else "damaged"
            if status == "ok":
                written = await loop.run_in_executor(pool, write_record, targets[path], record)
                installed[path] = {**record, "size": written["size"], "mtime_ns": written["mtime_ns"]}
            files.append({"path": path, "status": status, "sha256": sha256, "expected_sha256": expected})
    finally:
        pool.shutdown(wait=False)
    return {"files": files, **{s: sum(f["status"] == s for f in files) for s in ("ok", "damaged", "unverified")}}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        while block := os.read(fd, READ):
            digest.update(block)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # do not push ComfyUI's models out of memory
    finally:
        os.close(fd)
    return digest.hexdigest()
