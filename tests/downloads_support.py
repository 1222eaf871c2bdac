"""Helpers for download tests: presets that point at the fake hub, and waiting on bus events."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from types import SimpleNamespace

import yaml

from dashboard.api.context import SERVICES
from dashboard.services.downloads.transfer import RetryPolicy

FAST_RETRY = RetryPolicy(attempts=6, base=0.01, cap=0.05)


def write_preset(settings, preset_id: str, files: list[dict], dependencies: tuple[str, ...] = (),
                 gated: bool = False) -> None:
    """A user preset whose files are `{path, repo, file, size[, optional]}` on the fake hub."""
    folder = settings.data_dir / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "id": preset_id, "name": preset_id.title(), "category": "Image Generation", "type": "image",
        "dependencies": list(dependencies), "gated": gated,
        "files": [{"path": f["path"], "source": {"repo": f["repo"], "file": f["file"]}, "size": f["size"],
                   **({"optional": True} if f.get("optional") else {})} for f in files],
    }
    (folder / f"{preset_id}.yaml").write_text(yaml.safe_dump(data))


def write_workspace_preset(workspace: Path, preset_id: str, files: list[dict]) -> None:
    """`write_preset` for a server or command that is yet to start on `workspace` (its data in workspace/.dashboard)."""
    write_preset(SimpleNamespace(data_dir=workspace / ".dashboard"), preset_id, files)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Events:
    """Every bus event of an app, to wait on by type and condition."""

    def __init__(self, client_or_app) -> None:
        app = getattr(client_or_app, "app", client_or_app)
        self.queue, self.unsubscribe = app[SERVICES].bus.queue()
        self.seen: list = []

    async def wait(self, type_: str, predicate=lambda data: True, timeout: float = 60) -> dict:
        async def next_match() -> dict:
            while True:
                event = await self.queue.get()
                self.seen.append(event)
                if event.type == type_ and predicate(event.data):
                    return event.data

        return await asyncio.wait_for(next_match(), timeout)
