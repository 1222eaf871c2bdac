"""Headless provisioning: `comfy-dashboard presets list|status|plan|install` and `users add`, for
Docker entrypoints.

Runs the same services as the server, without HTTP and without a ComfyUI. `plan` prints what an
install would download and exits non-zero when it would not fit or a gated repository refuses the
token; `install` shows a progress line per preset on stderr and exits non-zero if any install
fails. The caller creates the folders first (`cli.prepare_folders`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
from typing import TextIO

from .comfy.backend import UnavailableBackend
from .config import Settings
from .errors import DashboardError, PresetAlreadyInstalled
from .services.auth import AuthService
from .services.container import Services
from .services.sizes import human_size
from .store import Store


def run(settings: Settings, command: str, preset_ids: list[str], force: bool = False, priority: str = "normal",
        as_json: bool = False, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one presets command; returns the process exit code."""
    # PRESET_DOWNLOAD is for the server's start; here the command line says what to install.
    settings = settings.replace(preset_download=())
    return asyncio.run(_run(settings, command, preset_ids, force, priority, as_json, out, err))


async def _run(settings: Settings, command: str, preset_ids: list[str], force: bool, priority: str,
               as_json: bool, out: TextIO, err: TextIO) -> int:
    services = Services(settings, UnavailableBackend())  # installing needs no ComfyUI
    await services.start()
    try:
        if command == "list":
            return await _list(services, out)
        if command == "status":
            return await _status(services, preset_ids, out, err)
        if command == "plan":
            return await _plan(services, preset_ids, as_json, out, err)
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


async def _plan(services: Services, preset_ids: list[str], as_json: bool, out: TextIO, err: TextIO) -> int:
    code = 0
    plans = []
    for preset_id in preset_ids:
        try:
            plan = await services.downloads.plans.preset(preset_id)
        except DashboardError as exc:
            err.write(f"{preset_id}: {exc.message}\n")
            code = 1
            continue
        plans.append(plan)
        if not (plan["fits"] and plan["access"]["ok"]):
            code = 1
        if not as_json:
            out.write(_plan_text(plan))
    if as_json:
        out.write(json.dumps(plans, indent=2) + "\n")
    return code


def _plan_text(plan: dict) -> str:
    """A plan as lines for a terminal."""
    lines = [f"{plan['preset_id']} ({plan['name']}): {human_size(plan['bytes_to_download'])} to download "
             f"of {human_size(plan['total_bytes'])}"]
    for dep in plan["dependencies"]:
        state = "installed" if dep["installed"] else f"{human_size(dep['bytes_to_download'])} to download"
        lines.append(f"  needs {dep['id']} ({dep['name']}): {state}")
    for f in plan["files"]:
        state = (f"download {human_size(f['bytes_to_download'])}" if f["download"]
                 else "verified" if f["verified"] else "present" if f["present"] else "optional, skipped")
        others = f["shared_with"]
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        shared = f"  (also in {', '.join(others[:3])}{more})" if others else ""
        lines.append(f"  {f['path']:<60} {human_size(f['size_bytes']):>9}  {state}{shared}")
    for v in plan["volumes"]:
        verdict = "fits" if v["fits"] else "DOES NOT FIT"
        lines.append(f"  volume {v['path']}: {human_size(v['needed_bytes'])} needed, "
                     f"{human_size(v['free_bytes'])} free: {verdict}")
    for repo in plan["access"]["repos"]:
        lines.append(f"  access {repo['repo']}: {repo['status']} ({repo['message']}; {repo['model_page']})")
    return "\n".join(lines) + "\n"


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
