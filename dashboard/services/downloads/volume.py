"""What the model folders say is installed: the records beside files, read at start and followed.

At start every record (`records.py`) is adopted into the verified list and the database, so a lost
database forgets nothing, and verified files without a record get one. While running, the model
folders are looked at every `WATCH_INTERVAL`: what another process (another pod on the same
volume, the CLI) installed, removed or changed is adopted and announced as `models_changed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

from ...errors import DashboardError
from ...events import EventBus
from ...store import Store
from ...threads import LOOP_DEFAULT, Threads
from ..model_index import ModelIndex
from .planner import Planner
from .records import read_record, read_records, write_record

log = logging.getLogger("dashboard.downloads")

#: How often the model folders are looked at for what other processes did.
WATCH_INTERVAL = 2.0


class VolumeRecords:
    """Keeps `planner.installed` in step with the records on the volume."""

    def __init__(self, index: ModelIndex, planner: Planner, store: Store, bus: EventBus,
                 threads: Threads = LOOP_DEFAULT) -> None:
        self.index = index
        self.threads = threads
        self.planner = planner
        self.store = store
        self.bus = bus
        self._seen: dict[str, tuple[int, float]] = {}  # model files as last looked at

    async def adopt(self) -> None:
        """Take every record on the volume as verified; write records for verified files without one."""
        roots = [(folder, root) for folder, paths in self.index.roots.items() for root in paths]
        records = await self.threads.run(read_records, roots)
        installed = self.planner.installed
        for path, record in records.items():  # the record beside a file knows best, its mtime too
            if path not in installed or installed[path].get("sha256") != record["sha256"]:
                with contextlib.suppress(sqlite3.Error):  # the records stay the truth; the index catches up
                    await self.store.record_installed(record)
            installed[path] = record
        missing = {path: record for path, record in installed.items() if path not in records}
        await self.threads.run(self._write_missing, missing)
        await self.index.refresh(force=True)
        self._seen = self._files()  # what `follow` compares with
        self.index.invalidate()  # whoever asks next gets a scan of their own, not this start-up one

    async def follow(self) -> None:
        """Until cancelled: adopt what others install, and announce every change of the model files
        since `adopt`."""
        seen = self._seen
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                await self.index.refresh()  # cheap when no folder changed (directory mtimes)
                now = self._files()
                changed = sorted(p for p in now.keys() | seen.keys() if now.get(p) != seen.get(p))
                seen = now
                if not changed:
                    continue
                targets = {p: Path(m.abspath) for p in changed if (m := self.index.get(p)) is not None}
                self.planner.installed.update(await self.threads.run(_records_of, targets))
                self.bus.publish("models_changed", {"paths": changed[:100], "count": len(changed)}, "downloads")
            except Exception:  # a volume that went away for a moment: look again next time
                log.warning("Could not look at the model folders", exc_info=True)

    def _files(self) -> dict[str, tuple[int, float]]:
        return {path: (m.size, m.modified) for path, m in self.index.files().items()}

    def _write_missing(self, installed: dict[str, dict[str, Any]]) -> None:
        for path, record in installed.items():
            with contextlib.suppress(OSError, DashboardError):
                target = self.planner.target(path)
                if target.stat().st_size == record["size"]:
                    write_record(target, record)


def _records_of(targets: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Blocking: the records beside these files (model-folder path -> record), where there is one."""
    return {path: {**record, "path": path} for path, target in targets.items()
            if (record := read_record(target)) is not None}
