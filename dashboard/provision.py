"""Headless provisioning: `comfy-dashboard presets list|install|status` and `users add`, for Docker
entrypoints.

Runs the same services as the server, without HTTP and without a ComfyUI. `install` shows a
progress line per preset on stderr and exits non-zero if any install fails. The caller creates the
folders first (`cli.prepare_folders`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from typing import TextIO

from .comfy.backend import UnavailableBackend
from .config import Settings
from .errors import DashboardError, PresetAlreadyInstalled
from .services.auth import AuthService
from .services.container import Services
from .store import Store


def run(settings: Settings, command: str, preset_ids: list[str], force: bool = False, priority: str = "normal",
        out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one presets command; returns the process exit code."""
    # PRESET_DOWNLOAD is for the server's start; here the command line says what to install.
    settings = settings.replace(preset_download=())
    return asyncio.run(_run(settings, command, preset_ids, force, priority, out, err))


async def _run(settings: Settings, command: str, preset_ids: list[str], force: bool, priority: str,
               out: TextIO, err: TextIO) -> int:
    services = Services(settings, UnavailableBackend())  # installing needs no ComfyUI
    await services.start()
    try:
        if command == "list":
            return await _list(services, out)
        if command == "status":
            return await _status(services, preset_ids, out, err)
        return await _install(services, preset_ids, force, priority, err)
    finally:
        await services.stop()


async def _list(services: Services, out: TextIO) -> int:
    listing = await services.presets.list()
    for p in listing["presets"]:
        mark = "installed" if p["installed"] else ""
        out.write(f"{p['id']:<40} {p['type']:<6} {p['download_size']:>9}  {mark:<9} {p['name']}\n")
    for error in listing["errors"]:
        out.write(f"skipped {error['file']}: {error['error']}\n")
    return 0


async def _status(services: Services, preset_ids: list[str], out: TextIO, err: TextIO) -> int:
    code = 0
    for preset_id in preset_ids:
        try:
            status = await services.presets.status(preset_id)
        except DashboardError as exc:
            err.write(f"{preset_id}: {exc.message}\n")
            code = 1
            continue
        out.write(f"{preset_id}: {status['status']} ({status['files']['completed']}/{status['files']['total']} "
                  f"files, {status['progress']}%)\n")
    return code


async def _install(services: Services, preset_ids: list[str], force: bool, priority: str, err: TextIO) -> int:
    events, unsubscribe = services.bus.queue()
    pending: dict[str, str] = {}
    failed = False
    for preset_id in preset_ids:
        try:
            answer = await services.downloads.install(preset_id, force=force, priority=priority)
        except PresetAlreadyInstalled:
            err.write(f"{preset_id}: already installed\n")
            continue
        except DashboardError as exc:
            err.write(f"{preset_id}: {exc.message} [{exc.code}]\n")
            failed = True
            continue
        if answer["download_id"] is None:
            err.write(f"{preset_id}: installed\n")
        else:
            pending[answer["download_id"]] = preset_id
    bar = _ProgressBar(err)
    try:
        while pending:
            event = await events.get()
            download_id = event.data.get("download_id") or event.data.get("details", {}).get("download_id")
            if download_id not in pending:
                continue
            if event.type == "download_progress":
                bar.show(event.data)
            elif event.type == "error":
                bar.done(f"{pending[download_id]}: {event.data['message']}")
            elif event.type == "download_complete":
                ok = event.data["status"] == "success"
                failed |= not ok
                if ok:
                    bar.done(f"{pending[download_id]}: installed in {event.data['time_taken_seconds']} s")
                pending.pop(download_id)
    finally:
        unsubscribe()
    return 1 if failed else 0


class _ProgressBar:
    """One updating line on a terminal; a line per 10% elsewhere (logs)."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last_decile: dict[str, int] = {}

    def show(self, data: dict) -> None:
        progress = data["progress"]
        filled = int(self.width * progress / 100)
        line = (f"{data['preset_id']} [{'#' * filled}{'.' * (self.width - filled)}] {progress:5.1f}%  "
                f"{data['files']['completed']}/{data['files']['total']} files  {data['speed']}"
                + (f"  eta {data['eta']}" if data.get("eta") else ""))
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
        elif self._last_decile.get(data["download_id"]) != int(progress // 10):
            self._last_decile[data["download_id"]] = int(progress // 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self, message: str) -> None:
        self.stream.write(("\r" + " " * 100 + "\r" if self.tty else "") + message + "\n")
        self.stream.flush()


def add_user(settings: Settings, username: str, role: str, password: str) -> int:
    """Create or replace a user in the data dir's database."""

    async def add() -> None:
        store = Store(settings.data_dir / "dashboard.db")
        await store.open()
        try:
            await AuthService(store, settings.data_dir, settings.secret, settings.token_ttl, None).add_user(
                username, password, role)
        finally:
            await store.close()

    asyncio.run(add())
    print(f"user {username!r} saved with role {role}")
    return 0


def has_users(settings: Settings) -> bool:
    """Whether the data dir's database holds any user (blocking: for the start, before the loop runs)."""
    path = settings.data_dir / "dashboard.db"
    if not path.is_file():
        return False
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            return db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None
        except sqlite3.OperationalError:  # no users table yet
            return False
