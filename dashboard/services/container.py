"""The services of one dashboard, built once and shared by every app that serves them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..comfy.backend import ComfyBackend
from ..comfy.folders import standalone_roots
from ..config import Settings
from ..events import EventBus
from .catalogue import Catalogue
from .gpu import GpuReader
from .model_index import ModelIndex
from .presets import PresetService
from .system import SystemMonitor

log = logging.getLogger("dashboard")

#: The preset catalogue shipped with the package.
SHIPPED_PRESETS = Path(__file__).resolve().parent.parent.parent / "presets"


class Services:
    """Everything the API handlers call. `start()` and `stop()` run on the serving loop."""

    def __init__(self, settings: Settings, backend: ComfyBackend) -> None:
        self.settings = settings
        self.backend = backend
        self.bus = EventBus()
        self.system = SystemMonitor(self.bus, backend, settings.models_dir, settings.status_interval,
                                    GpuReader(settings.cuda_visible_devices))
        self.models = ModelIndex(backend.model_roots() or standalone_roots(settings.models_dir))
        self.catalogue = Catalogue(SHIPPED_PRESETS, settings.data_dir / "presets", set(self.models.roots),
                                   templates=settings.official_templates)
        self.presets = PresetService(self.catalogue, self.models, settings.hf_endpoint)
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
