"""Newer versions of downloaded models: a Hub file whose branch now serves other bytes, a Civitai
model with a newer version.

Only files the dashboard downloaded know where they came from: a Hub file at a branch (not one
pinned to a commit) is checked by its metadata (one HEAD, as a download starts); a Civitai file
by its model's version list. Answers are kept `CHECK_EVERY` seconds unless asked to refresh. An
update downloads the new file to the same path through the download engine: its `.part` beside
the old file, verified against the hash the source announces, then renamed over it, so the old
file stays until the new one is whole; its preset keeps it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from huggingface_hub import get_hf_file_metadata, hf_hub_url

from ...errors import DashboardError, NotFound, invalid
from ...threads import Threads
from ..downloads.jobs import FileTask
from ..downloads.manager import DownloadManager
from ..downloads.sources import Tokens, request
from ..downloads.urls import CIVITAI

#: Seconds an answer of the sources is kept.
CHECK_EVERY = 6 * 3600
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_ASKING = 4


class ModelUpdates:
    """GET /api/models/updates and POST /api/models/update."""

    def __init__(self, installed: Mapping[str, dict[str, Any]], downloads: DownloadManager, tokens: Tokens,
                 threads: Threads) -> None:
        self.installed = installed
        self.downloads = downloads
        self.tokens = tokens
        self.threads = threads
        self.session: aiohttp.ClientSession | None = None
        self._found: dict[str, dict[str, Any]] = {}  # path -> its update
        self._checked_at: float | None = None
        self._checking: asyncio.Future | None = None

    def paths(self) -> set[str]:
        """The paths with an update, as of the last check (no request)."""
        self._forget_applied()
        return set(self._found)

    def _forget_applied(self) -> None:
        """Drop the updates that were installed since they were found."""
        for path, found in list(self._found.items()):
            record = self.installed.get(path) or {}
            latest = found["latest"]
            version = (record.get("source") or {}).get("version_id")
            if (latest.get("sha256") and record.get("sha256") == latest["sha256"]) or (
                    found["kind"] == "civitai" and version == latest["version_id"]):
                del self._found[path]

    async def list(self, refresh: bool = False) -> dict[str, Any]:
        """`{updates: [{path, kind, preset_id, current, latest}], checked_at}`; asks the sources when
        the last answer is older than CHECK_EVERY or `refresh`."""
        if refresh or self._checked_at is None or time.time() - self._checked_at > CHECK_EVERY:
            if self._checking is None or self._checking.done():
                self._checking = asyncio.ensure_future(self._check())
            await asyncio.shield(self._checking)
        self._forget_applied()
        return {"updates": sorted(self._found.values(), key=lambda u: u["path"]), "checked_at": self._checked_at}

    async def update(self, paths: list[str], priority: str = "normal") -> dict[str, Any]:
        """Download the newer file of each of `paths` (one job); NOT_FOUND naming a path without one."""
        await self.list()
        missing = [p for p in paths if p not in self._found]
        if missing:
            raise NotFound(f"No update known for {', '.join(missing)}: GET /api/models/updates?refresh=true first",
                           {"paths": missing})
        tasks = [await self._task(self._found[p]) for p in dict.fromkeys(paths)]
        job = await self.downloads.queue_files(tasks, priority)
        return {"download_id": job.id, "status": job.status.value, "paths": [t.path for t in tasks]}

    async def _check(self) -> None:
        semaphore = asyncio.Semaphore(_ASKING)

        async def one(path: str, record: dict[str, Any]) -> None:
            async with semaphore:
                try:
                    found = await self._newer(path, record)
                except DashboardError:
                    found = None
                if found is None:
                    self._found.pop(path, None)
                else:
                    self._found[path] = found

        records = {p: r for p, r in self.installed.items() if isinstance(r.get("source"), dict)}
        for path in set(self._found) - set(records):
            self._found.pop(path, None)
        await asyncio.gather(*(one(p, r) for p, r in records.items()))
        self._checked_at = time.time()

    async def _newer(self, path: str, record: dict[str, Any]) -> dict[str, Any] | None:
        source = record["source"]
        base = {"path": path, "preset_id": record.get("preset_id") or None, "source": source}
        if source.get("kind", "huggingface") == "huggingface" and source.get("repo"):
            revision = source.get("revision") or "main"
            if _COMMIT.match(revision):
                return None  # pinned to a commit: it cannot change
            url = hf_hub_url(source["repo"], source["repo_file"], revision=revision, endpoint=self.tokens.hf_endpoint)
            try:
                meta = await self.threads.run(lambda: get_hf_file_metadata(
                    url, token=self.tokens.hf_token or False, timeout=20, endpoint=self.tokens.hf_endpoint))
            except Exception:  # a refusal, a timeout, a gone repository: no answer this time
                return None
            etag = (meta.etag or "").lower()
            current = (record.get("etag") or record.get("sha256") or "").strip('"').lower()
            if not etag or etag == current or etag == (record.get("sha256") or ""):
                return None
            return {**base, "kind": "huggingface",
                    "current": {"etag": current or None, "commit": record.get("commit_hash"),
                                "size": record.get("size")},
                    "latest": {"etag": etag, "commit": meta.commit_hash, "size": meta.size,
                               "sha256": etag if len(etag) == 64 else None}}
        if source.get("kind") == "civitai" and source.get("model_id") and source.get("version_id"):
            endpoint = self.tokens.civitai_endpoint or CIVITAI
            try:
                async with await request(self.session, "GET", f"{endpoint}/api/v1/models/{source['model_id']}",
                                         self.tokens, {"Accept": "application/json"},
                                         timeout=aiohttp.ClientTimeout(total=20)) as response:
                    info = await response.json(content_type=None) if response.status == 200 else None
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                return None
            versions = [v for v in (info or {}).get("modelVersions") or [] if isinstance(v, dict) and v.get("id")]
            if not versions or versions[0]["id"] == source["version_id"] or versions[0]["id"] < source["version_id"]:
                return None
            latest = versions[0]
            return {**base, "kind": "civitai", "current": {"version_id": source["version_id"]},
                    "latest": {"version_id": latest["id"], "name": latest.get("name")}}
        return None

    async def _task(self, found: dict[str, Any]) -> FileTask:
        """The download of an update: same path, the new bytes, checked against the announced hash."""
        path, source, latest = found["path"], found["source"], found["latest"]
        preset = {"preset_id": found["preset_id"]} if found["preset_id"] else {}
        if found["kind"] == "huggingface":
            spec = {"path": path, "repo": source["repo"], "repo_file": source["repo_file"],
                    "revision": source.get("revision") or "main", "sha256": latest["sha256"],
                    "size": latest["size"] or 0, "source": {**source, "commit": latest["commit"]}, **preset}
            return FileTask(path, spec, latest["size"] or 0)
        folder, _, relpath = path.partition("/")
        subfolder, _, filename = relpath.rpartition("/")
        endpoint = self.tokens.civitai_endpoint or CIVITAI
        task = await self.downloads.url_task(f"{endpoint}/api/download/models/{latest['version_id']}", folder,
                                             filename, subfolder or None)
        if not task.spec.get("sha256"):
            raise invalid(f"Civitai gives no hash for the new version of {path}: download it by URL instead",
                          path=path)
        return FileTask(task.path, {**task.spec, **preset}, task.size)

