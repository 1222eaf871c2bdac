"""The ComfyUI backend protocol, and the backend used when there is no ComfyUI.

Implementations: in-process (inside ComfyUI, `inprocess.py`), remote (a ComfyUI at COMFYUI_URL,
`remote.py`) and this base class, which answers COMFYUI_UNAVAILABLE to everything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ComfyUIUnavailable
from ..events import EventBus
from ..threads import LOOP_DEFAULT, Threads


def unavailable(reason: str = "ComfyUI is not connected") -> ComfyUIUnavailable:
    """The 503 COMFYUI_UNAVAILABLE error."""
    return ComfyUIUnavailable(reason, {"hint": "Set COMFYUI_URL, or run inside ComfyUI"})


@dataclass(frozen=True)
class OutputFile:
    """A file of ComfyUI's output, input or temp folder, as its /view serves it, streamed."""

    content_type: str
    size: int | None
    chunks: AsyncIterator[bytes]


class ComfyBackend:
    """What the dashboard needs from ComfyUI. This base is the 'no ComfyUI' backend."""

    kind = "none"
    #: Where execution and queue events go (set by `attach`), how many pending prompts `submit` accepts,
    #: and the threads that blocking work runs in.
    bus: EventBus | None = None
    max_queue: int = 100
    threads: Threads = LOOP_DEFAULT

    def attach(self, bus: EventBus, max_queue: int = 100, threads: Threads = LOOP_DEFAULT) -> None:
        """Publish execution events on `bus` (queue_update, workflow_progress, workflow_output, error);
        refuse submissions with QUEUE_FULL once `max_queue` prompts are pending; block only in `threads`."""
        self.bus = bus
        self.max_queue = max_queue
        self.threads = threads

    async def start(self) -> None:
        """Open connections; called once when the app starts."""

    async def stop(self) -> None:
        """Close connections; called once when the app stops."""

    async def reachable(self) -> bool:
        """Whether ComfyUI answers now. Quick and never raises."""
        return False

    async def health(self) -> dict[str, Any]:
        """`{status, version, queue: {pending, running}}`; raises COMFYUI_UNAVAILABLE."""
        raise unavailable()

    async def submit(self, workflow: dict[str, Any], priority: int = 0) -> dict[str, Any]:
        """Validate and queue an API-format workflow: `{prompt_id, number, node_errors}`.

        Higher `priority` runs earlier among pending prompts, equal ones in submission order (the
        numbering is described in `protocol.py`).

        Raises INVALID_WORKFLOW (with ComfyUI's error and node_errors), QUEUE_FULL, COMFYUI_UNAVAILABLE.
        """
        raise unavailable()

    async def queue(self) -> dict[str, list[dict[str, Any]]]:
        """`{"running": [...], "pending": [...]}`, pending in run order; each item
        `{prompt_id, number, priority, type, workflow}` (workflow: the API-format prompt; priority: the
        dashboard priority it was submitted with, None when not submitted by a dashboard)."""
        raise unavailable()

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """ComfyUI's history entry of one prompt, or None."""
        raise unavailable()

    async def clear(self, kind: str) -> int:
        """Clear `pending`, `running` or `all`; returns how many prompts were removed or interrupted."""
        raise unavailable()

    async def interrupt(self) -> bool:
        """Interrupt the running prompt; False when nothing was running."""
        raise unavailable()

    # queue control: items are ComfyUI's own `[number, prompt_id, prompt, extra_data, outputs]`

    async def pending_items(self) -> list[list[Any]]:
        """The pending items as ComfyUI holds them, in run order."""
        raise unavailable()

    async def take(self, prompt_id: str) -> list[Any] | None:
        """Remove a pending prompt from ComfyUI's queue and return its item; None when it is not pending."""
        raise unavailable()

    async def put_back(self, item: list[Any]) -> dict[str, Any]:
        """Queue an item taken before, with its prompt id and number: `{prompt_id, number}`. Raises
        INVALID_WORKFLOW when ComfyUI (validating it again, over HTTP) refuses it."""
        raise unavailable()

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        """What ComfyUI's `POST /free` does: unload models and/or free cached memory before the next prompt."""
        raise unavailable()

    def hold_new(self, hold: Callable[[list[Any]], None] | None) -> bool:
        """While `hold` is set, prompts queued from now on (by anyone) go to `hold` instead of ComfyUI's
        queue; None puts things back. False where this cannot be done (a remote ComfyUI: its new
        prompts are taken from its queue as they appear instead)."""
        return False

    def announce(self) -> None:
        """Publish `queue_update` again (the dashboard's queue state changed)."""

    def output_file(self, filename: str, subfolder: str, kind: str) -> AbstractAsyncContextManager[OutputFile]:
        """Open a file that ComfyUI's /view serves (`kind`: output, input or temp).

        Raises NOT_FOUND, INVALID_REQUEST (a path ComfyUI refuses), COMFYUI_UNAVAILABLE.
        """
        raise unavailable()

    def model_roots(self) -> dict[str, list[Path]] | None:
        """Folder type -> model folders as ComfyUI sees them, or None when the settings decide."""
        return None

    def forget_model_folder(self, folder_type: str) -> None:
        """Drop ComfyUI's cached file list of a folder type after the dashboard changed its files."""

    def device_memory(self) -> dict[str, Any] | None:
        """Blocking: the device ComfyUI computes on, from ComfyUI's own memory functions, or None outside
        ComfyUI: `{type, index, name, vendor, uuid, total_bytes, free_bytes}` (`type` as torch names it:
        cuda, mps, xpu, cpu, ...; index, vendor and uuid None where unknown)."""
        return None


class UnavailableBackend(ComfyBackend):
    """No ComfyUI: the ComfyUI endpoints answer COMFYUI_UNAVAILABLE, all else works."""
