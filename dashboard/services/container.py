"""The services of one dashboard, built once and shared by every app that serves them."""

from __future__ import annotations

import ipaddress
import logging
import tempfile
from pathlib import Path

from ..comfy.backend import ComfyBackend
from ..config import ConfigError, Settings
from ..errors import DashboardError, PresetAlreadyInstalled
from ..events import EventBus
from ..resources import shipped
from ..store import Store
from ..threads import Threads
from .auth import AuthService
from .catalogue import Catalogue
from .downloads.limits import Limits, LimitSettings
from .downloads.manager import DownloadManager
from .downloads.sources import Tokens
from .gpu import GpuReader
from .library.service import Library
from .model_index import ModelIndex
from .models import ModelService, standalone_model_roots
from .page import PageFiles
from .presets import PresetService
from .queue import QueueService
from .queue_control import QueueControl
from .system import SystemMonitor
from .workflow_models import WorkflowModels
from .workflows import WorkflowLibrary

log = logging.getLogger("dashboard")

#: The preset catalogue shipped with the package.
SHIPPED_PRESETS = shipped("presets")
#: The workflows shipped with the package.
SHIPPED_WORKFLOWS = shipped("workflows")


class Services:
    """Everything the API handlers call. `start()` and `stop()` run on the serving loop.

    `threads` is this dashboard's own pool for blocking work (`threads.py`), handed to every part
    that blocks; it starts first and stops last.
    """

    def __init__(self, settings: Settings, backend: ComfyBackend) -> None:
        self.settings = settings
        self.backend = backend
        self.bus = EventBus()
        self.threads = threads = Threads()
        backend.attach(self.bus, settings.max_queue, threads=threads)
        self.system = SystemMonitor(self.bus, backend, settings.models_dir, settings.status_interval,
                                    GpuReader(settings.cuda_visible_devices), threads=threads)
        self.index = ModelIndex(backend.model_roots()
                                or standalone_model_roots(settings.models_dir, settings.extra_model_paths),
                                threads=threads)
        self.catalogue = Catalogue(SHIPPED_PRESETS, settings.data_dir / "presets", set(self.index.roots),
                                   templates=settings.official_templates, threads=threads)
        self.presets = PresetService(self.catalogue, self.index, settings.hf_endpoint)
        self.models = ModelService(self.index, self.presets, backend, self.system, threads=threads)
        self.store = Store(settings.data_dir / "dashboard.db")
        self.downloads = DownloadManager(
            self.store, self.bus, self.presets, self.index,
            Tokens(settings.hf_token, settings.hf_endpoint, settings.civitai_token, settings.civitai_endpoint),
            download_hosts=settings.download_hosts,
            max_downloads=settings.max_downloads, read_timeout=settings.read_timeout,
            forget_folder=backend.forget_model_folder, in_use=self.models.in_use,
            limits=Limits(LimitSettings(settings.max_bandwidth, settings.connections_per_file,
                                        settings.max_connections, settings.yield_to_generation,
                                        settings.yield_share)), threads=threads)
        self.presets.progress = self.downloads
        self.presets.verified = self.downloads.installed
        self.models.installed = self.downloads.installed
        self.workflows = WorkflowLibrary(SHIPPED_WORKFLOWS, settings.data_dir / "workflows", self.catalogue,
                                         self.index, templates=settings.official_templates, threads=threads)
        self.workflow_models = WorkflowModels(self.presets, self.downloads)
        self.library = Library(self.index, self.presets, self.store, self.bus, backend, self.downloads,
                               self.models.deleter, self.downloads.tokens, settings.data_dir, threads,
                               scan=settings.library_scan, civitai_lookup=settings.civitai_lookup)
        self.models.library = self.library
        self.presets.updated = self.library.updates.paths
        self.queue_control = QueueControl(backend, self.store, self.bus)
        self.queue = QueueService(backend, self.workflows, self.queue_control, self.system.usage_between)
        self.auth = AuthService(self.store, settings.data_dir, settings.secret, settings.token_ttl,
                                settings.admin_password, threads=threads) if settings.enable_auth else None
        self.page = PageFiles(threads=threads)
        self.started = False

    async def start(self) -> None:
        """Start background work; idempotent. A start that fails stops what it had started."""
        if self.started:
            return
        self.started = True
        try:
            self.threads.start()
            await self.threads.run(usable_data_dir, self.settings.data_dir)
            self._read_model_roots()
            await self.backend.start()
            await self.system.start()
            await self.store.open()
            if self.auth is not None:
                await self.auth.start()
            elif self.settings.port is not None and not _loopback(self.settings.host):
                log.warning("Authentication is off and the dashboard listens on %s: anyone who can reach it can "
                            "control this machine. Set ENABLE_AUTH=true and DASHBOARD_ADMIN_PASSWORD.",
                            self.settings.host)
            await self.downloads.start()
            await self.library.start()
            await self.queue_control.start()
        except BaseException:
            await self.stop()
            raise
        await self.install_requested(self.settings.preset_download)

    def _read_model_roots(self) -> None:
        """Inside ComfyUI, read its model folders again now: custom nodes loaded after this one add some."""
        roots = self.backend.model_roots()
        if roots:
            self.index.roots = {name: list(paths) for name, paths in roots.items()}
            self.catalogue.set_folder_types(set(roots))

    async def install_requested(self, preset_ids: tuple[str, ...]) -> None:
        """Queue the installs asked for at start (PRESET_DOWNLOAD); problems are logged, not raised."""
        if not preset_ids:
            return
        await self.catalogue.refresh()
        for preset_id in preset_ids:
            try:
                answer = await self.downloads.install(preset_id)
                log.info("PRESET_DOWNLOAD: %s %s", preset_id, answer["status"])
            except PresetAlreadyInstalled as exc:
                log.info("PRESET_DOWNLOAD: %s: %s", preset_id, exc.message)
            except DashboardError as exc:
                log.error("PRESET_DOWNLOAD: %s: %s", preset_id, exc.message)

    async def stop(self) -> None:
        """Stop background work; idempotent."""
        if not self.started:
            return
        self.started = False
        try:
            await self.queue_control.stop()
            await self.library.stop()
            await self.downloads.stop()
            await self.store.close()
            await self.system.stop()
            await self.backend.stop()
        finally:
            await self.threads.stop()  # last: the others may still hand work over while they stop


def usable_data_dir(path: Path) -> None:
    """Create the data folder if needed and check a file can be written there (blocking).

    Raises ConfigError naming DASHBOARD_DATA_DIR, so a start fails with a reason a user can act on.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"DASHBOARD_DATA_DIR: the data folder {path} cannot be used: "
                          f"{exc.strerror or exc}") from None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
