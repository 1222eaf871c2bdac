"""Which model files each prompt used: `last_used` and `use_count` per file, kept in the store.

Every prompt the dashboard sees start on ComfyUI's queue counts, whoever queued it (the dashboard,
ComfyUI's editor, a script; in process and remote alike): when the running prompt changes, its
API-format workflow is read from ComfyUI's queue (or history, if it already finished) and each
model file its loader inputs name, and that exists, gets one more use. Never raises into the bus.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from ...comfy.backend import ComfyBackend
from ...errors import DashboardError
from ...events import Event, EventBus
from ...store import Store
from ..model_index import ModelIndex
from ..workflow_format import required_models

log = logging.getLogger("dashboard.library")

#: Prompt ids remembered as counted (a prompt is counted once however often the queue is read).
_REMEMBERED = 1000


class ModelUsage:
    """Counts model use per prompt; `of(path)` is `(last_used, use_count)`."""

    def __init__(self, bus: EventBus, backend: ComfyBackend, store: Store, index: ModelIndex) -> None:
        self.bus = bus
        self.backend = backend
        self.store = store
        self.index = index
        self._usage: dict[str, tuple[float, int]] = {}
        self._counted: collections.deque[str] = collections.deque(maxlen=_REMEMBERED)
        self._tasks: set[asyncio.Task] = set()
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        self._usage = await self.store.usage()
        self._unsubscribe = self.bus.subscribe(self._on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def of(self, path: str) -> tuple[float | None, int]:
        """When `path` was last used by a prompt (epoch seconds, None: never seen used) and how often."""
        return self._usage.get(path, (None, 0))

    def _on_event(self, event: Event) -> None:
        if event.type != "queue_update":
            return
        current = event.data.get("current_task") or {}
        prompt_id = current.get("prompt_id")
        if not prompt_id or prompt_id in self._counted:
            return
        self._counted.append(prompt_id)
        task = asyncio.create_task(self._count(prompt_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count(self, prompt_id: str) -> None:
        try:
            workflow = await self._workflow_of(prompt_id)
            if not workflow:
                return
            await self.index.refresh()
            paths = [m["path"] for m in required_models(workflow, "api") if self.index.get(m["path"]) is not None]
            if not paths:
                return
            when = time.time()
            await self.store.record_use(paths, when)
            for path in paths:
                _last, count = self._usage.get(path, (None, 0))
                self._usage[path] = (when, count + 1)
        except (DashboardError, OSError) as exc:
            log.debug("Model use of prompt %s not counted: %s", prompt_id, exc)
        except Exception:
            log.exception("Model use of prompt %s not counted", prompt_id)

    async def _workflow_of(self, prompt_id: str) -> dict[str, Any] | None:
        """The API-format workflow of a prompt: from the queue while it runs, else from history."""
        queue = await self.backend.queue()
        for item in [*queue.get("running", []), *queue.get("pending", [])]:
            if item.get("prompt_id") == prompt_id:
                return item.get("workflow")
        entry = await self.backend.history(prompt_id)
        prompt = (entry or {}).get("prompt")
        if isinstance(prompt, (list, tuple)) and len(prompt) > 2 and isinstance(prompt[2], dict):
            return prompt[2]
        return None
