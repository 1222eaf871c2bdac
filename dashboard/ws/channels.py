"""The channels a client can subscribe to: the snapshot each starts with, and which events coalesce."""

from __future__ import annotations

from typing import Any

from ..errors import DashboardError
from ..events import Event
from ..services.container import Services

CHANNELS = ("downloads", "queue", "system", "workflows")

#: Event type -> the field whose value replaces an older waiting message with the same value.
COALESCE = {"download_progress": "download_id", "system_status": None, "queue_update": None,
            "workflow_progress": "prompt_id"}


async def snapshot(services: Services, channel: str) -> dict[str, Any]:
    """The current state of a channel, sent right after subscribing to it (the queue's error body
    while ComfyUI does not answer)."""
    if channel == "downloads":
        return services.downloads.list()
    if channel == "system":
        return services.system.event_data()
    if channel == "queue":
        try:
            return await services.queue.queue()
        except DashboardError as exc:
            return exc.to_dict()
    return {}


def coalesce_key(event: Event) -> Any:
    """The outbox key under which a newer `event` replaces a waiting one; None: it never does."""
    if event.type not in COALESCE:
        return None
    field = COALESCE[event.type]
    return (event.type, event.data.get(field) if field else None)
