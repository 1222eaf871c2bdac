"""The services of one dashboard, built once and shared by every app that serves them."""

from __future__ import annotations

import asyncio
import logging

from ..comfy.backend import ComfyBackend
from ..config import Settings
from ..events import EventBus
from .gpu import GpuReader
from .system import SystemMonitor

log = logging.getLogger("dashboard")


class Services:
    """Everything the API handlers call. `start()` and `stop()` run on the serving loop."""

    def __init__(self, settings: Settings, backend: ComfyBackend) -> None:
        self.settings = settings
        self.backend = backend
        self.bus = EventBus()
        self.system = SystemMonitor(self.bus, backend, settings.models_dir, settings.status_interval,
                                    GpuReader(settings.cuda_visible_devices))
        self.started = False

    async def start(self) -> None:
        """Start background work; idempotent."""
        if self.started:
            return
        self.bus.bind(asyncio.get_running_loop())
        await self.backend.start()
        await self.system.start()
        self.started = True

    async def stop(self) -> None:
        """Stop background work; idempotent."""
        if not self.started:
            return
        self.started = False
        await self.system.stop()
        await self.backend.stop()
