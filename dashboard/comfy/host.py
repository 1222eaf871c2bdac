"""The ComfyUI this process runs, as its custom node finds it: the PromptServer and where its folders are.

Only the standard library up front, and ComfyUI's own modules when asked: the custom node's
entry point uses this before any other part of the dashboard is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ComfyUI:
    """ComfyUI in this process: `server` is `PromptServer.instance`, `folder_paths` its module of folders."""

    server: Any
    folder_paths: Any

    @property
    def app(self) -> Any:
        """ComfyUI's aiohttp application (what the dashboard mounts on)."""
        return self.server.app

    def folder_defaults(self) -> dict[str, str]:
        """The dashboard's folders inside ComfyUI unless the environment says otherwise: ComfyUI's base
        folder as the workspace, its models folder, and `<user folder>/dashboard` for the dashboard's state."""
        return {
            "workspace": str(Path(self.folder_paths.base_path)),
            "models_dir": self.folder_paths.models_dir,
            "data_dir": str(Path(self.folder_paths.get_user_directory()) / "dashboard"),
        }


def running_comfyui() -> ComfyUI | None:
    """The ComfyUI this process runs, or None when it is not ComfyUI (no `server` module to import)."""
    try:
        import folder_paths
        import server
    except ImportError:
        return None
    return ComfyUI(server.PromptServer.instance, folder_paths)
