"""Where the shipped data lives: the source tree's top-level folders, or their copies in a wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """The shipped `presets`, `workflows` or `web` folder.

    In a checkout (and inside ComfyUI's custom_nodes) they sit beside the package; a wheel carries
    them inside it as `dashboard/shipped/<name>`.
    """
    beside = _PACKAGE.parent / name
    return beside if beside.is_dir() else _PACKAGE / "shipped" / name
