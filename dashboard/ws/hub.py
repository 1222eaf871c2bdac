"""The hub: every open socket, fed from the event bus, and checked again when users or tokens change."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..events import Event
from ..services.container import Services
from . import messages
from .channels import CHANNELS, coalesce_key
from .connection import Connection

#: Checks a token: the user it belongs to, or Unauthorized.
Authenticator = Callable[[str], dict[str, Any]]


class Hub:
    """Every open connection, fed from the event bus.

    With `authenticate` (auth on), a socket must authenticate first, and every socket's token is
    checked again whenever users or revoked tokens change.
    """

    def __init__(self, services: Services, authenticate: Authenticator | None = None) -> None:
        self.services = services
        self.authenticate = authenticate
        self.connections: set[Connection] = set()
        self._listeners: dict[str, set[Connection]] = {channel: set() for channel in CHANNELS}
        self._unsubscribe = services.bus.subscribe(self._on_event)
        self._unwatch_auth = services.auth.on_change(self._recheck) if authenticate and services.auth else None

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one WebSocket until it closes."""
        connection = await Connection.open(self, request)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            await connection.close()
        return connection.socket

    def listen(self, channel: str, connection: Connection) -> Callable[[], None]:
        """Send `channel`'s events to `connection` until the returned function is called."""
        listeners = self._listeners[channel]
        listeners.add(connection)
        return lambda: listeners.discard(connection)

    def close(self) -> None:
        """Stop receiving events."""
        self._unsubscribe()
        if self._unwatch_auth is not None:
            self._unwatch_auth()

    async def close_connections(self) -> None:
        """Close every socket (the server is shutting down)."""
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.socket.close(code=1001, message=b"server shutdown"), 2)

    def _recheck(self) -> None:
        for connection in list(self.connections):
            connection.recheck()

    def _on_event(self, event: Event) -> None:
        listeners = self._listeners.get(event.channel)
        if not listeners:
            return
        message, key = messages.event(event.type, event.data), coalesce_key(event)
        for connection in list(listeners):
            connection.push(message, key)
