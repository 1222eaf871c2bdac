"""A ComfyUI reached over its HTTP API (standalone mode with COMFYUI_URL)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from .backend import ComfyBackend, unavailable

_TIMEOUT = aiohttp.ClientTimeout(total=5, connect=2)


class RemoteBackend(ComfyBackend):
    """Talks to the ComfyUI at `url` (e.g. http://127.0.0.1:8188)."""

    kind = "remote"

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reachable(self) -> bool:
        try:
            await self._get("/system_stats")
        except Exception:
            return False
        return True

    async def health(self) -> dict[str, Any]:
        stats, queue = await asyncio.gather(self._get("/system_stats"), self._get("/queue"))
        return {
            "status": "healthy",
            "version": (stats.get("system") or {}).get("comfyui_version"),
            "queue": {"pending": len(queue.get("queue_pending", [])), "running": len(queue.get("queue_running", []))},
        }

    async def _get(self, path: str) -> Any:
        if self._session is None:
            raise unavailable("The ComfyUI connection is not open")
        try:
            async with self._session.get(self.url + path) as response:
                response.raise_for_status()
                return await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise unavailable(f"ComfyUI at {self.url} is not responding: {exc.__class__.__name__}") from None
