"""ComfyUI in this very process: PromptServer's queue, called directly, never over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .backend import ComfyBackend


class InProcessBackend(ComfyBackend):
    """The backend used when the dashboard is loaded as a ComfyUI custom node."""

    kind = "in_process"

    def __init__(self, prompt_server: Any) -> None:
        self._server = prompt_server

    async def reachable(self) -> bool:
        return True

    async def health(self) -> dict[str, Any]:
        running, pending = self._server.prompt_queue.get_current_queue_volatile()
        return {"status": "healthy", "version": _comfyui_version(),
                "queue": {"pending": len(pending), "running": len(running)}}

    def model_roots(self) -> dict[str, list[Path]]:
        """Every model folder ComfyUI knows, extra_model_paths.yaml and legacy names included."""
        import folder_paths

        return {name: [Path(p) for p in paths] for name, (paths, _ext) in folder_paths.folder_names_and_paths.items()
                if name != "custom_nodes"}


def _comfyui_version() -> str | None:
    try:
        import comfyui_version
    except ImportError:
        return None
    return getattr(comfyui_version, "__version__", None)
