"""The ComfyUI backend protocol, and the backend used when there is no ComfyUI.

Implementations: in-process (inside ComfyUI, `inprocess.py`), remote (a ComfyUI at COMFYUI_URL,
`remote.py`) and this base class, which answers COMFYUI_UNAVAILABLE to everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ApiError


def unavailable(reason: str = "ComfyUI is not connected") -> ApiError:
    """The 503 COMFYUI_UNAVAILABLE error."""
    return ApiError("COMFYUI_UNAVAILABLE", reason, {"hint": "Set COMFYUI_URL, or run inside ComfyUI"})


class ComfyBackend:
    """What the dashboard needs from ComfyUI. This base is the 'no ComfyUI' backend."""

    kind = "none"

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
        """Validate and queue an API-format workflow: `{prompt_id, number}`.

        Raises INVALID_WORKFLOW (with ComfyUI's error and node_errors), QUEUE_FULL, COMFYUI_UNAVAILABLE.
        """
        raise unavailable()

    async def queue(self) -> dict[str, list[dict[str, Any]]]:
        """`{"running": [...], "pending": [...]}`, pending in run order; each item
        `{prompt_id, number, workflow}` (workflow: the API-format prompt)."""
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

    def model_roots(self) -> dict[str, list[Path]] | None:
        """Folder type -> model folders as ComfyUI sees them, or None when the settings decide."""
        return None


class UnavailableBackend(ComfyBackend):
    """No ComfyUI: the ComfyUI endpoints answer COMFYUI_UNAVAILABLE, all else works."""
