"""The in-process event bus: services publish, the WebSocket hub and tests subscribe.

`publish` is synchronous and never blocks: it only calls the subscribers, which must be quick
(typically putting the event on a queue of their own). A failing subscriber is logged and does
not stop the others. Publish only from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("dashboard.events")


@dataclass(frozen=True)
class Event:
    """One thing that happened: `type` as in the WebSocket protocol (e.g. `download_progress`)."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    channel: str = "system"


Subscriber = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers, in subscription order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, type_: str, data: dict[str, Any], channel: str) -> None:
        """Deliver an event to every subscriber now."""
        event = Event(type_, data, channel)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("Event subscriber failed on %s", type_)

    def queue(self, maxsize: int = 0) -> tuple[asyncio.Queue[Event], Callable[[], None]]:
        """A queue that receives every event (oldest dropped when full), and its unsubscribe."""
        events: asyncio.Queue[Event] = asyncio.Queue(maxsize)

        def put(event: Event) -> None:
            if events.full():
                events.get_nowait()
            events.put_nowait(event)

        return events, self.subscribe(put)
