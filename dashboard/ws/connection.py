"""One client socket: its user, subscriptions, bounded outbox and sender task.

Progress messages are coalesced to the latest value per download or prompt; a client that stays
over OUTBOX_LIMIT is dropped, and one that sends faster than it reads only ever waits on itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ..api.routing import load_json
from ..api.security.guard import USER, request_token
from ..errors import Unauthorized, internal_error, invalid
from . import messages
from .commands import dispatch, message_id

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger(__name__)

#: Messages a client may have waiting before it is dropped as too slow.
OUTBOX_LIMIT = 512
#: Largest client message we read; bigger ones get an error.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
HEARTBEAT_SECONDS = 20
#: Seconds a socket has for its `auth` message when auth is on and the upgrade carried no token.
AUTH_TIMEOUT = 5.0
#: The close code of a socket that is not, or no longer, authenticated.
CLOSE_UNAUTHORIZED = 4401


class Connection:
    """One client: its channels, user, outbox and sender task."""

    def __init__(self, hub: Hub, socket: web.WebSocketResponse, request: web.Request) -> None:
        self.hub = hub
        self.socket = socket
        self.request = request
        self.user: dict[str, Any] | None = request.get(USER)
        # with auth on: the token the user is checked by again (the guard's, or the handshake's)
        self.token: str | None = request_token(request)[0] if USER in request else None
        self.dropped = False
        self._subscriptions: dict[str, Callable[[], None]] = {}  # channel -> its unsubscribe
        self._signed_out: asyncio.Future | None = None
        self._outbox: OrderedDict[Any, dict[str, Any]] = OrderedDict()
        self._wake = asyncio.Event()
        self._sent = asyncio.Event()
        self._ids = itertools.count()
        self._sender: asyncio.Task | None = None

    @classmethod
    async def open(cls, hub: Hub, request: web.Request) -> Connection:
        """Upgrade `request` to a WebSocket (with heartbeats) and wrap it."""
        socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_MESSAGE_BYTES * 4)
        await socket.prepare(request)
        return cls(hub, socket, request)

    @property
    def channels(self) -> frozenset[str]:
        """The channels this socket receives."""
        return frozenset(self._subscriptions)

    async def run(self) -> None:
        """Authenticate if needed, then answer the client's messages until the socket closes."""
        self._sender = asyncio.create_task(self._send_loop())
        if self.user is None and self.hub.authenticate is not None and not await self._handshake():
            return
        async for frame in self.socket:
            await self._room_for_answers()
            if frame.type == WSMsgType.TEXT:
                await self.receive(frame.data)
            elif frame.type == WSMsgType.BINARY:
                self.push(messages.error(None, invalid("Binary frames are not supported; send JSON text")))
            elif frame.type == WSMsgType.ERROR:
                break

    async def receive(self, raw: str) -> None:
        """Answer one text frame; whatever goes wrong is answered with an `error` and the socket stays open."""
        answer_id = None
        try:
            if len(raw) > MAX_MESSAGE_BYTES:
                raise invalid(f"Message larger than {MAX_MESSAGE_BYTES} bytes")
            try:
                message = load_json(raw)
            except ValueError as exc:
                raise invalid(f"Message is not valid JSON: {exc}"[:500]) from None
            answer_id = message_id(message)
            await dispatch(self, message)
        except Exception as exc:
            self.push(messages.error(answer_id, internal_error(exc, "a WebSocket message")))

    def push(self, message: dict[str, Any], key: Any = None) -> None:
        """Queue a message; a message with the key of a waiting one replaces it and goes last."""
        if self.dropped:
            return
        key = key if key is not None else ("msg", next(self._ids))
        self._outbox[key] = message
        self._outbox.move_to_end(key)
        if len(self._outbox) > OUTBOX_LIMIT:
            self._drop()
            return
        self._wake.set()

    def subscribe(self, channels: Iterable[str]) -> list[str]:
        """Receive these channels' events; answers the channels that were not subscribed yet."""
        new = [channel for channel in channels if channel not in self._subscriptions]
        for channel in new:
            self._subscriptions[channel] = self.hub.listen(channel, self)
        return new

    def unsubscribe(self, channels: Iterable[str]) -> None:
        """Stop receiving these channels' events."""
        for channel in channels:
            stop = self._subscriptions.pop(channel, None)
            if stop is not None:
                stop()

    async def authorize(self) -> bool:
        """Before an action: with auth on, check the token again, noticing users changed by another
        process; False when it no longer holds (the socket is then closing with 4401)."""
        if self.token is not None:
            await self.hub.services.auth.refresh()
        return self.recheck()

    def recheck(self) -> bool:
        """Check the token again: the user's current role applies from now on; a token that is revoked,
        expired, or whose user was removed or replaced closes the socket with 4401 (and answers False)."""
        if self._signed_out is not None:
            return False
        if self.token is None:  # auth is off, or the socket has not authenticated yet
            return True
        try:
            self.user = self.hub.authenticate(self.token)
            return True
        except Unauthorized:
            self._signed_out = asyncio.ensure_future(self.socket.close(code=CLOSE_UNAUTHORIZED, message=b"signed out"))
            return False

    async def close(self) -> None:
        """End the subscriptions and the sender, and close the socket if it is still open."""
        self.unsubscribe(list(self._subscriptions))
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a peer that went away
                await self._sender
        if not self.socket.closed and not self.dropped:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.socket.close(), 2)

    async def _handshake(self) -> bool:
        """Authenticate by the upgrade's `?token=` or a first `auth` message within AUTH_TIMEOUT;
        without a valid token the socket is closed with 4401."""
        token = self.request.query.get("token")
        if token is None:
            try:
                frame = await self.socket.receive(timeout=AUTH_TIMEOUT)
                data = load_json(frame.data) if frame.type == WSMsgType.TEXT else {}
                token = data.get("token") if isinstance(data, dict) and data.get("type") == "auth" else None
            except (asyncio.TimeoutError, ValueError, TypeError):
                token = None
        try:
            if token:
                await self.hub.services.auth.refresh()  # notice users changed by another process
            self.user = self.hub.authenticate(token) if token else None
        except Unauthorized:
            self.user = None
        if self.user is None:
            await self.socket.close(code=CLOSE_UNAUTHORIZED, message=b"authentication required")
            return False
        self.token = token
        self.push(messages.auth_ok(self.user))
        return True

    async def _room_for_answers(self) -> None:
        """Read the client's next message only once half the outbox is free: a client that sends
        faster than it reads waits on itself, and only events it does not read can get it dropped."""
        while len(self._outbox) >= OUTBOX_LIMIT // 2 and not self.dropped and not self._sender.done():
            self._sent.clear()
            await self._sent.wait()

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox:
                    _key, message = self._outbox.popitem(last=False)
                    try:
                        await self.socket.send_str(json.dumps(message, default=str))
                    except (ConnectionError, RuntimeError):  # the peer went away; the reader loop ends too
                        return
                    self._sent.set()
        finally:
            self._sent.set()  # a reader waiting for room must not wait on a sender that has stopped

    def _drop(self) -> None:
        """A client that cannot keep up: stop queueing for it and cut the connection."""
        self.dropped = True
        self._outbox.clear()
        self.unsubscribe(list(self._subscriptions))
        log.warning("Dropping a WebSocket client that is not reading its messages")
        if self._sender is not None:
            self._sender.cancel()
        transport = self.request.transport
        if transport is not None:
            transport.abort()
