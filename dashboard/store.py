"""SQLite state (stdlib sqlite3): downloads, installed files, the library's hashes and usage, the
queue's held prompts, users and revoked tokens.

One connection, used from one thread of its own: every method is a coroutine that runs its SQL
off the event loop, and rows come back by column name (`sqlite3.Row`, handed out as dicts). WAL
mode keeps readers and the writer out of each other's way, and every change is committed at
once, so a `kill -9` loses nothing that was acknowledged. A database that cannot be read (random
bytes, a malformed page, a folder in its place) is moved aside as `dashboard.db.corrupt-<time>`
with one warning and a new one is started: what was installed is read back from the records
beside the model files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("dashboard.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS downloads (
    id TEXT PRIMARY KEY,
    preset_id TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS download_files (
    download_id TEXT NOT NULL REFERENCES downloads(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    path TEXT NOT NULL,
    spec TEXT NOT NULL,
    size INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (download_id, path)
);
CREATE TABLE IF NOT EXISTS installed_files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    sha256 TEXT,
    etag TEXT,
    commit_hash TEXT,
    preset_id TEXT,
    installed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    hashed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS model_usage (
    path TEXT PRIMARY KEY,
    last_used REAL NOT NULL,
    use_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS lookups (
    key TEXT PRIMARY KEY,
    answer TEXT,
    fetched_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""


class Store:
    """The dashboard's database at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Open (and create) the database, and start its thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-store")
        await self._run(self._open)

    async def close(self) -> None:
        """Close the database and its thread."""
        if self._executor is None:
            return
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        executor, self._executor = self._executor, None
        executor.shutdown(wait=True)  # at once: the close above was its last work

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:  # not a database, malformed, or a folder where it should be
            if isinstance(exc, sqlite3.OperationalError) and not self.path.is_dir():
                raise  # cannot open or write here (permissions, a full disk): not a damaged database
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
            log.warning("The database %s could not be read (%s): moved aside as %s; starting a new one",
                        self.path, exc, aside.name)
            self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            if db.execute("PRAGMA quick_check").fetchone()["quick_check"] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError(f"the database {self.path} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self._db.execute(sql, args)]

    # downloads

    async def create_download(self, download: dict[str, Any], files: list[dict[str, Any]]) -> None:
        """Insert a download and its files in one transaction."""

        def insert() -> None:
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute(
                    "INSERT INTO downloads (id, preset_id, status, priority, created_at, updated_at) "
                    "VALUES (:id, :preset_id, :status, :priority, :created_at, :created_at)", download)
                self._db.executemany(
                    "INSERT INTO download_files (download_id, position, path, spec, size, status) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(download["id"], i, f["path"], json.dumps(f["spec"]), f["size"], f["status"])
                     for i, f in enumerate(files)])

        await self._run(insert)

    async def update_download(self, download_id: str, **fields: Any) -> None:
        """Set some columns of a download (`error` is stored as JSON)."""
        if "error" in fields and fields["error"] is not None:
            fields["error"] = json.dumps(fields["error"])
        fields["updated_at"] = time.time()
        columns = ", ".join(f"{name} = :{name}" for name in fields)
        await self._run(lambda: self._db.execute(f"UPDATE downloads SET {columns} WHERE id = :id",
                                                 {**fields, "id": download_id}))

    async def update_file(self, download_id: str, path: str, **fields: Any) -> None:
        """Set some columns of one file of a download."""
        if "error" in fields and fields["error"] is not None:
            fields["error"] = json.dumps(fields["error"])
        columns = ", ".join(f"{name} = :{name}" for name in fields)
        await self._run(lambda: self._db.execute(
            f"UPDATE download_files SET {columns} WHERE download_id = :download_id AND path = :path",
            {**fields, "download_id": download_id, "path": path}))

    async def downloads(self) -> list[dict[str, Any]]:
        """Every download with its files, oldest first."""

        def read() -> list[dict[str, Any]]:
            downloads = self._rows("SELECT * FROM downloads ORDER BY created_at")
            files = self._rows("SELECT * FROM download_files ORDER BY download_id, position")
            by_id: dict[str, list] = {}
            for f in files:
                f["spec"] = json.loads(f["spec"])
                f["error"] = json.loads(f["error"]) if f["error"] else None
                by_id.setdefault(f["download_id"], []).append(f)
            for d in downloads:
                d["error"] = json.loads(d["error"]) if d["error"] else None
                d["files"] = by_id.get(d["id"], [])
            return downloads

        return await self._run(read)

    # installed files

    async def record_installed(self, entry: dict[str, Any]) -> None:
        """Remember a verified file (path, size, sha256, etag, commit_hash, preset_id)."""
        await self._run(lambda: self._db.execute(
            "INSERT OR REPLACE INTO installed_files (path, size, sha256, etag, commit_hash, preset_id, installed_at) "
            "VALUES (:path, :size, :sha256, :etag, :commit_hash, :preset_id, :installed_at)",
            {"installed_at": time.time(), **entry}))

    async def forget_installed(self, paths: list[str]) -> None:
        """Drop files from the manifest."""
        await self._run(lambda: self._db.executemany("DELETE FROM installed_files WHERE path = ?",
                                                     [(p,) for p in paths]))

    async def installed_files(self) -> dict[str, dict[str, Any]]:
        """The manifest: path -> its record."""
        return {row["path"]: row for row in await self._run(self._rows, "SELECT * FROM installed_files")}

    # the library

    async def file_hashes(self) -> dict[str, tuple[int, int, int, str]]:
        """path -> (size, mtime_ns, inode, sha256) of every file hashed."""
        rows = await self._run(lambda: self._db.execute(
            "SELECT path, size, mtime_ns, inode, sha256 FROM file_hashes").fetchall())
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    async def save_hashes(self, entries: list[tuple[str, int, int, int, str]]) -> None:
        """Remember (path, size, mtime_ns, inode, sha256) of files just hashed."""
        now = time.time()
        await self._run(lambda: self._db.executemany(
            "INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, inode, sha256, hashed_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", [(*entry, now) for entry in entries]))

    async def forget_hashes(self, paths: list[str]) -> None:
        """Drop the hashes of files that are gone."""
        await self._run(lambda: self._db.executemany("DELETE FROM file_hashes WHERE path = ?", [(p,) for p in paths]))

    async def record_use(self, paths: list[str], when: float) -> None:
        """One more use of each model file, at `when`."""
        await self._run(lambda: self._db.executemany(
            "INSERT INTO model_usage (path, last_used, use_count) VALUES (?, ?, 1) ON CONFLICT(path) "
            "DO UPDATE SET last_used = MAX(last_used, excluded.last_used), use_count = use_count + 1",
            [(p, when) for p in paths]))

    async def usage(self) -> dict[str, tuple[float, int]]:
        """path -> (last_used, use_count)."""
        rows = await self._run(lambda: self._db.execute(
            "SELECT path, last_used, use_count FROM model_usage").fetchall())
        return {row[0]: (row[1], row[2]) for row in rows}

    async def lookup(self, key: str) -> tuple[Any, float] | None:
        """A remembered answer of a remote service (JSON, may be null) and when it was fetched."""
        row = await self._run(lambda: self._db.execute(
            "SELECT answer, fetched_at FROM lookups WHERE key = ?", (key,)).fetchone())
        return None if row is None else (json.loads(row[0]) if row[0] is not None else None, row[1])

    async def remember_lookup(self, key: str, answer: Any) -> None:
        await self._run(lambda: self._db.execute(
            "INSERT OR REPLACE INTO lookups (key, answer, fetched_at) VALUES (?, ?, ?)",
            (key, json.dumps(answer) if answer is not None else None, time.time())))

    # the dashboard's own state (the queue's pause, held and pending prompts)

    async def get_state(self, key: str, default: Any = None) -> Any:
        """A value saved with `set_state` (JSON), or `default`."""
        row = await self._run(lambda: self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone())
        return default if row is None else json.loads(row[0])

    async def set_state(self, key: str, value: Any) -> None:
        await self._run(lambda: self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                                                 (key, json.dumps(value))))

    # users and tokens

    async def save_user(self, username: str, role: str, password_hash: str) -> float:
        """Create or replace a user; returns the new record's created_at."""
        created_at = time.time()
        await self._run(lambda: self._db.execute(
            "INSERT OR REPLACE INTO users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
            (username, role, password_hash, created_at)))
        return created_at

    async def users(self) -> list[dict[str, Any]]:
        """Every user: username, role, password_hash, created_at."""
        return await self._run(self._rows, "SELECT * FROM users")

    async def set_role(self, username: str, role: str) -> bool:
        """Change a user's role (nothing else); False if there is no such user."""
        return await self._run(lambda: self._db.execute(
            "UPDATE users SET role = ? WHERE username = ?", (role, username)).rowcount > 0)

    async def delete_user(self, username: str) -> bool:
        """Remove a user; False if there was none."""
        return await self._run(lambda: self._db.execute(
            "DELETE FROM users WHERE username = ?", (username,)).rowcount > 0)

    async def data_version(self) -> int:
        """A number that changes whenever another connection (another process) commits to the database."""
        return (await self._run(lambda: self._db.execute("PRAGMA data_version").fetchone()))["data_version"]

    async def revoke(self, jti: str, expires_at: float) -> None:
        """Remember a revoked token until it would have expired anyway."""
        def write() -> None:
            self._db.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", (time.time(),))
            self._db.execute("INSERT OR REPLACE INTO revoked_tokens (jti, expires_at) VALUES (?, ?)", (jti, expires_at))

        await self._run(write)

    async def revoked(self) -> set[str]:
        rows = await self._run(self._rows, "SELECT jti FROM revoked_tokens WHERE expires_at >= ?", (time.time(),))
        return {row["jti"] for row in rows}
