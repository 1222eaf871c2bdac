"""The dashboard page's files (`web/page/`): a fixed allow-list of plain files, each read and hashed once.

The page is `index.html`; its assets are the `.js`, `.css`, `.svg` and `.png` files beside it with
plain names (lowercase letters, digits, `-` and `_`). The allow-list is taken once, when the
dashboard starts, from the regular files of that folder; nothing else (no subfolder, no symlink,
no `..`, no other name) is ever read. Each file is read and hashed (for its ETag) in a worker
thread when it is first asked for, and kept: later requests are answered from memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..resources import shipped
from ..threads import LOOP_DEFAULT, Threads

#: The page's folder in this source tree.
PAGE_DIR = shipped("web") / "page"
#: File extension -> the Content-Type it is served with.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
INDEX = "index.html"
_ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:js|css|svg|png)")


@dataclass(frozen=True)
class PageFile:
    """One file's bytes, its Content-Type and an ETag of its content."""

    body: bytes
    content_type: str
    etag: str


class PageFiles:
    """The page and its assets; `asset(name)` answers None for anything not on the allow-list."""

    def __init__(self, folder: Path = PAGE_DIR, threads: Threads = LOOP_DEFAULT) -> None:
        self.folder = folder
        self.threads = threads
        try:
            entries = list(folder.iterdir())
        except OSError:
            entries = []
        self.assets = frozenset(p.name for p in entries
                                if _ASSET_NAME.fullmatch(p.name) and p.is_file() and not p.is_symlink())
        self._files: dict[str, asyncio.Future[PageFile | None]] = {}  # name -> its one read, done or under way

    async def index(self) -> PageFile | None:
        """`index.html`, or None if the page is missing from this installation."""
        return await self._read(INDEX)

    async def asset(self, name: str) -> PageFile | None:
        """An allowed asset by its plain file name, else None."""
        if name not in self.assets:
            return None
        return await self._read(name)

    async def _read(self, name: str) -> PageFile | None:
        if name not in self._files:  # the first request reads it; those meanwhile wait for the same read
            self._files[name] = asyncio.ensure_future(self.threads.run(self._load, name))
        return await asyncio.shield(self._files[name])  # a request that goes away leaves the read to the others

    def _load(self, name: str) -> PageFile | None:
        """Read and hash one file (in a worker thread); None if it cannot be read (not installed)."""
        path = self.folder / name
        try:
            body = path.read_bytes()
        except OSError:
            return None
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        return PageFile(body, CONTENT_TYPES[path.suffix], etag)
