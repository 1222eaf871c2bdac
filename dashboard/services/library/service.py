"""The model library as the API answers it: scan status, duplicates and their cleanup, one model's
info (hash, owners, provenance, licence, header metadata, usage, Civitai's word), updates.

Civitai's by-hash lookup runs only with DASHBOARD_CIVITAI_LOOKUP=true (a hash leaves the machine);
its answers, "not on Civitai" included, are kept in the store for `LOOKUP_TTL`, and a version's
first preview image is saved under `<data dir>/previews/` and served by the dashboard, so the page
never loads anything from Civitai.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

from ...comfy.backend import ComfyBackend
from ...errors import ModelNotFound, NotFound
from ...events import EventBus
from ...store import Store
from ...threads import Threads
from ..downloads.manager import DownloadManager
from ..downloads.records import source_of
from ..downloads.sources import Tokens, request
from ..downloads.urls import CIVITAI
from ..model_delete import ModelDeleter
from ..model_index import ModelIndex
from ..presets import PresetService
from ..sizes import iso_utc
from .duplicates import duplicate_groups
from .hashes import LibraryHashes
from .headers import read_metadata
from .updates import ModelUpdates
from .usage import ModelUsage

log = logging.getLogger("dashboard.library")

#: Seconds a Civitai answer is kept.
LOOKUP_TTL = 7 * 24 * 3600
#: The largest preview image saved.
MAX_PREVIEW = 10 * 1024 * 1024
_IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


class Library:
    """Everything /api/library and the library half of /api/models answer."""

    def __init__(self, index: ModelIndex, presets: PresetService, store: Store, bus: EventBus,
                 backend: ComfyBackend, downloads: DownloadManager, deleter: ModelDeleter, tokens: Tokens,
                 data_dir: Path, threads: Threads, scan: bool = True, civitai_lookup: bool = False) -> None:
        self.index = index
        self.presets = presets
        self.store = store
        self.installed: Mapping[str, dict[str, Any]] = downloads.installed
        self.deleter = deleter
        self.tokens = tokens
        self.previews = data_dir / "previews"
        self.threads = threads
        self.civitai_lookup = civitai_lookup
        self.hashes = LibraryHashes(index, store, bus, self.installed, threads, enabled=scan)
        self.usage = ModelUsage(bus, backend, store, index)
        self.updates = ModelUpdates(self.installed, downloads, tokens, threads)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.updates.session = self._session
        await self.usage.start()
        await self.hashes.start()

    async def stop(self) -> None:
        await self.hashes.stop()
        await self.usage.stop()
        if self._session is not None:
            await self._session.close()

    # duplicates

    async def duplicates(self) -> dict[str, Any]:
        """`{groups, reclaimable_bytes}` of the files hashed so far."""
        await self.presets.refresh()
        rows = self.index.rows()
        owners = self._owners()
        first_roots = {t: str(paths[0]) for t, paths in self.index.roots.items() if paths}
        groups = await self.threads.run(duplicate_groups, rows, self.hashes.hashes(),
                                        lambda p: owners.get(p, []), first_roots)
        return {"groups": groups, "reclaimable_bytes": sum(g["reclaimable_bytes"] for g in groups)}

    async def remove_duplicates(self, sha256: list[str] | None = None, keep: dict[str, str] | None = None,
                                force: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Delete all but the kept copies of each group (`sha256`: these groups; all by default).
        `keep` names the copy to keep of a group (sha256 -> path); a copy a preset lists is kept
        unless `force`. With `dry_run`, what would be deleted and freed."""
        groups = (await self.duplicates())["groups"]
        if sha256 is not None:
            wanted = {s.lower() for s in sha256}
            unknown = wanted - {g["sha256"] for g in groups}
            if unknown:
                raise NotFound(f"No duplicates with sha256 {', '.join(sorted(unknown))}", {"sha256": sorted(unknown)})
            groups = [g for g in groups if g["sha256"] in wanted]
        doomed: list[str] = []
        kept: list[str] = []
        for group in groups:
            chosen = (keep or {}).get(group["sha256"])
            paths = [f["path"] for f in group["files"]]
            if chosen is not None and chosen not in paths:
                raise NotFound(f"{chosen} is not a copy of {group['sha256']}", {"path": chosen})
            for f in group["files"]:
                stays = f["path"] == chosen if chosen is not None else f["keep"]
                if f["presets"] and not force:
                    stays = True
                (kept if stays else doomed).append(f["path"])
        size = {f["path"]: g["size_bytes"] for g in groups for f in g["files"]}
        if dry_run or not doomed:
            return {"deleted": 0, "would_delete": doomed, "kept": kept,
                    "space_freed_bytes": sum(size[p] for p in doomed) if dry_run else 0, "errors": []}
        answer = await self.deleter.delete(doomed, force)
        return {**answer, "would_delete": [], "kept": kept}

    # one model

    async def info(self, path: str) -> dict[str, Any]:
        """The body of GET /api/models/{path}/info; MODEL_NOT_FOUND for a path with no model file."""
        await self.presets.refresh()
        model = self.index.get(path)
        if model is None:
            raise ModelNotFound(f"No model file {path!r}", {"path": path})
        digest = self.hashes.sha256(path, model.size)
        owners = [p for p in self.presets.catalogue.presets.values() if any(f.path == path for f in p.files)]
        last_used, use_count = self.usage.of(path)
        duplicates = sorted(p for p, d in self.hashes.hashes().items() if d == digest and p != path) if digest else []
        metadata = await self.threads.run(read_metadata, Path(model.abspath))
        return {
            "path": path, "type": model.type, "size_bytes": model.size, "modified": iso_utc(model.modified),
            "sha256": digest, "hashed": digest is not None,
            "presets": [p.id for p in owners],
            "source": source_of(self.installed.get(path)),
            "license": next(({"name": p.license, "url": self.presets.model_page(p)} for p in owners if p.license),
                            None),
            "metadata": metadata,
            "last_used": iso_utc(last_used) if last_used else None, "use_count": use_count,
            "duplicates": duplicates,
            "update": next((u for u in (await self.updates.list())["updates"] if u["path"] == path), None),
            "civitai": await self._civitai(path, digest) if self.civitai_lookup and digest else None,
        }

    async def preview(self, path: str) -> Path:
        """The saved preview image of a model (NOT_FOUND when there is none)."""
        model = self.index.get(path)
        digest = self.hashes.sha256(path, model.size) if model is not None else None
        if digest is not None:
            for suffix in _IMAGE_TYPES.values():
                image = self.previews / f"{digest}{suffix}"
                if await self.threads.run(image.is_file):
                    return image
        raise NotFound(f"No preview image for {path!r}", {"path": path})

    async def _civitai(self, path: str, digest: str) -> dict[str, Any]:
        """Civitai's answer for a hash: `{found: false}` when Civitai does not know it."""
        key = f"civitai:{digest}"
        cached = await self.store.lookup(key)
        if cached is not None and time.time() - cached[1] < LOOKUP_TTL:
            answer = cached[0]
        else:
            answer = await self._ask_civitai(digest)
            if answer is None:
                return {"found": None, "error": "Civitai could not be reached"}
            await self.store.remember_lookup(key, answer)
        if answer.get("found") and answer.get("image"):
            with contextlib.suppress(NotFound):
                await self.preview(path)
                answer = {**answer, "preview": f"api/models/{path}/preview"}
        return {k: v for k, v in answer.items() if k != "image"}

    async def _ask_civitai(self, digest: str) -> dict[str, Any] | None:
        base = self.tokens.civitai_endpoint or CIVITAI
        try:
            async with await request(self._session, "GET", f"{base}/api/v1/model-versions/by-hash/{digest}",
                                     self.tokens, {"Accept": "application/json"}) as response:
                if response.status == 404:
                    return {"found": False}
                if response.status != 200:
                    return None
                info = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None
        if not isinstance(info, dict):
            return None
        model = info.get("model") if isinstance(info.get("model"), dict) else {}
        images = [i for i in info.get("images") or [] if isinstance(i, dict) and i.get("url")]
        answer = {"found": True, "model_id": info.get("modelId"), "version_id": info.get("id"),
                  "name": model.get("name"), "version": info.get("name"), "base_model": info.get("baseModel"),
                  "trained_words": [w for w in info.get("trainedWords") or [] if isinstance(w, str)],
                  "nsfw": bool(model.get("nsfw")),
                  "url": f"{CIVITAI}/models/{info.get('modelId')}?modelVersionId={info.get('id')}",
                  "image": None}
        if images and await self._save_preview(digest, images[0]["url"]):
            answer["image"] = images[0]["url"]
        return answer

    async def _save_preview(self, digest: str, url: str) -> bool:
        """Fetch a preview image once (an image type, at most MAX_PREVIEW bytes) into the previews folder."""
        if urlparse(url).scheme not in ("http", "https"):
            return False
        try:
            async with self._session.get(url) as response:
                suffix = _IMAGE_TYPES.get(response.content_type)
                if response.status != 200 or suffix is None or (response.content_length or 0) > MAX_PREVIEW:
                    return False
                data = await response.content.read(MAX_PREVIEW + 1)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False
        if len(data) > MAX_PREVIEW:
            return False

        def write() -> None:
            self.previews.mkdir(parents=True, exist_ok=True)
            partial = self.previews / f".{digest}{suffix}.part"
            partial.write_bytes(data)
            os.replace(partial, self.previews / f"{digest}{suffix}")

        try:
            await self.threads.run(write)
        except OSError as exc:
            log.warning("Could not save a preview image in %s: %s", self.previews, exc)
            return False
        return True

    def _owners(self) -> dict[str, list[str]]:
        """path -> the ids of the presets that list it."""
        owners: dict[str, list[str]] = {}
        for preset in self.presets.catalogue.presets.values():
            for f in preset.files:
                owners.setdefault(f.path, []).append(preset.id)
        return owners
