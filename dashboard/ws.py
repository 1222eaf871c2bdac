"""The WebSocket hub at /ws: channels, subscriptions, actions, and fan-out of bus events.

One `Connection` per socket owns its subscriptions and its outbox. Client messages are
dispatched by `type` (and actions by `action`) through tables with a schema each, so a message is
checked before anything runs; every problem is answered with an `error` message and the
connection stays open. Each client has a bounded outbox: progress messages are coalesced to the
latest value per download or prompt, a client that stays over the limit is dropped, and a slow
client only ever waits on itself. Heartbeats detect dead peers. With auth on, every action checks
the socket's token again (the user's current role; FORBIDDEN for a viewer), and a socket whose token
is logged out, or whose user is removed or replaced, is closed with code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web
from jsonschema import Draft202012Validator

from .api.downloads import SETTINGS_BODY
from .api.routing import load_json
from .errors import DashboardError, Unauthorized, internal_error
from .events import Event
from .security.guard import USER, request_token
from .services.container import Services
from .services.queue import NOT_GIVEN

log = logging.getLogger("dashboard.ws")

CHANNELS = ("downloads", "queue", "system", "workflows")
#: Messages a client may have waiting before it is dropped as too slow.
OUTBOX_LIMIT = 512
#: Largest client message we read; bigger ones get an error.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
HEARTBEAT_SECONDS = 20
AUTH_TIMEOUT = 5.0
CLOSE_UNAUTHORIZED = 4401

#: Event type -> the field whose value replaces an older waiting message with the same value.
COALESCE = {"download_progress": "download_id", "system_status": None, "queue_update": None,
            "workflow_progress": "prompt_id"}

Authenticator = Callable[[str], dict[str, Any]]
ActionHandler = Callable[[Services, dict[str, Any]], Awaitable[Any]]

_CHANNEL_LIST = {"type": "array", "items": {"enum": list(CHANNELS)}, "minItems": 1, "uniqueItems": True}
_ID = {"type": ["string", "integer"]}
MESSAGE_SCHEMAS = {
    "subscribe": {"properties": {"channels": _CHANNEL_LIST, "id": _ID}, "required": ["channels"]},
    "unsubscribe": {"properties": {"channels": _CHANNEL_LIST, "id": _ID}, "required": ["channels"]},
    "action": {"properties": {"action": {"type": "string"}, "data": {"type": "object"}, "id": _ID},
               "required": ["action"]},
    "auth": {"properties": {"token": {"type": "string"}, "id": _ID}, "required": ["token"]},
    "ping": {"properties": {"id": _ID}},
}
_VALIDATORS = {name: Draft202012Validator({"type": "object", **schema}) for name, schema in MESSAGE_SCHEMAS.items()}


def _obj(required: list[str], **properties: dict) -> Draft202012Validator:
    return Draft202012Validator({"type": "object", "properties": properties, "required": required,
                                 "additionalProperties": False})


_STR = {"type": "string", "minLength": 1, "maxLength": 200}


async def _execute(services: Services, data: dict[str, Any]) -> Any:
    return await services.queue.execute(data.get("workflow", NOT_GIVEN), data.get("workflow_id"),
                                        data.get("priority", 0))


#: action name -> (schema of its data, handler); every action needs an administrator when auth is on
ACTIONS: dict[str, tuple[Draft202012Validator, ActionHandler]] = {
    "install_preset": (_obj(["preset_id"], preset_id=_STR, force={"type": "boolean"},
                            priority={"enum": ["high", "normal", "low"]}),
                       lambda s, d: s.downloads.install(d["preset_id"], d.get("force", False),
                                                        d.get("priority", "normal"))),
    "uninstall_preset": (_obj(["preset_id"], preset_id=_STR, force={"type": "boolean"}),
                         lambda s, d: s.downloads.uninstall(d["preset_id"], d.get("force", False))),
    "pause_download": (_obj(["download_id"], download_id=_STR), lambda s, d: s.downloads.pause(d["download_id"])),
    "resume_download": (_obj(["download_id"], download_id=_STR),
                        lambda s, d: s.downloads.resume(d["download_id"])),
    "cancel_download": (_obj(["download_id"], download_id=_STR),
                        lambda s, d: s.downloads.cancel(d["download_id"])),
    "execute_workflow": (_obj([], workflow={"type": "object"}, workflow_id=_STR,
                              priority={"type": "integer", "minimum": -1000, "maximum": 1000}), _execute),
    "interrupt": (_obj([]), lambda s, d: s.queue.interrupt()),
    "clear_queue": (_obj([], type={"enum": ["pending", "running", "all"]}),
                    lambda s, d: s.queue.clear(d.get("type", "pending"))),
    "set_download_settings": (Draft202012Validator(SETTINGS_BODY),
                              lambda s, d: s.downloads.update_settings(d)),
}


class Hub:
    """Every open connection, fed from the event bus."""

    def __init__(self, services: Services, authenticate: Authenticator | None = None) -> None:
        self.services = services
        self.authenticate = authenticate
        self.connections: set[Connection] = set()
        self._unsubscribe = services.bus.subscribe(self._on_event)
        # users or revoked tokens changed: every socket's token is checked again
        self._unwatch_auth = services.auth.on_change(self._recheck) if authenticate and services.auth else None

    def close(self) -> None:
        """Stop receiving events."""
        self._unsubscribe()
        if self._unwatch_auth is not None:
            self._unwatch_auth()

    def _recheck(self) -> None:
        for connection in list(self.connections):
            connection.recheck()

    async def close_connections(self) -> None:
        """Close every socket (the server is shutting down)."""
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.socket.close(code=1001, message=b"server shutdown"), 2)

    def _on_event(self, event: Event) -> None:
        for connection in list(self.connections):
            if event.channel in connection.channels:
                connection.push({"type": event.type, "data": event.data}, _coalesce_key(event))

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one WebSocket until it closes."""
        socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_MESSAGE_BYTES * 4)
        await socket.prepare(request)
        connection = Connection(self, socket, request)
        self.connections.add(connection)
        if USER in request:  # authenticated by the guard: keep the token, to check it again later
            connection.token = request_token(request)[0]
        try:
            await connection.run(request.get(USER), request.query.get("token"))
        finally:
            self.connections.discard(connection)
            await connection.shutdown()
        return socket


class Connection:
    """One client: its channels, user, outbox and sender task."""

    def __init__(self, hub: Hub, socket: web.WebSocketResponse, request: web.Request) -> None:
        self.hub = hub
        self.socket = socket
        self.request = request
        self.channels: set[str] = set()
        self.user: dict[str, Any] | None = None
        self.token: str | None = None  # with auth on: the token the user is checked by again
        self._signed_out: asyncio.Future | None = None
        self._outbox: OrderedDict[Any, dict[str, Any]] = OrderedDict()
        self._wake = asyncio.Event()
        self._sent = asyncio.Event()
        self._ids = itertools.count()
        self._sender: asyncio.Task | None = None
        self.dropped = False

    async def run(self, user: dict[str, Any] | None, query_token: str | None) -> None:
        self._sender = asyncio.create_task(self._send_loop())
        self.user = user
        if self.user is None and self.hub.authenticate is not None and not await self._authenticate(query_token):
            return
        async for message in self.socket:
            await self._room_for_answers()
            if message.type == WSMsgType.TEXT:
                await self._receive(message.data)
            elif message.type == WSMsgType.BINARY:
                self.error(None, "INVALID_REQUEST", "Binary frames are not supported; send JSON text")
            elif message.type == WSMsgType.ERROR:
                break

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

    def error(self, message_id: Any, code: str, message: str, details: dict | None = None) -> None:
        self.push({"type": "error", "id": message_id,
                   "data": {"code": code, "message": message, "details": details or {}}})

    async def shutdown(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a peer that went away
                await self._sender
        if not self.socket.closed and not self.dropped:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.socket.close(), 2)

    async def _authenticate(self, query_token: str | None) -> bool:
        token = query_token
        if token is None:
            try:
                message = await self.socket.receive(timeout=AUTH_TIMEOUT)
                data = load_json(message.data) if message.type == WSMsgType.TEXT else {}
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
        self.push({"type": "auth_ok", "data": {"user": self.user}})
        return True

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

    async def _receive(self, raw: str) -> None:
        if len(raw) > MAX_MESSAGE_BYTES:
            self.error(None, "INVALID_REQUEST", f"Message larger than {MAX_MESSAGE_BYTES} bytes")
            return
        try:
            message = load_json(raw)
        except ValueError as exc:
            self.error(None, "INVALID_REQUEST", f"Message is not valid JSON: {exc}"[:500])
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self.error(None, "INVALID_REQUEST", "Message must be a JSON object with a string 'type'")
            return
        message_id = message.get("id") if isinstance(message.get("id"), (str, int)) else None
        kind = message["type"]
        validator = _VALIDATORS.get(kind)
        if validator is None:
            self.error(message_id, "INVALID_REQUEST", f"Unknown message type {kind!r}",
                       {"types": sorted(MESSAGE_SCHEMAS)})
            return
        problem = next(iter(validator.iter_errors(message)), None)
        if problem is not None:
            self.error(message_id, "INVALID_REQUEST", f"Invalid {kind} message: {problem.message[:300]}")
            return
        if kind == "subscribe":
            await self._subscribe(message_id, message["channels"])
        elif kind == "unsubscribe":
            self.channels.difference_update(message["channels"])
            self.push({"type": "unsubscribed", "id": message_id, "channels": sorted(self.channels)})
        elif kind == "action":
            await self._action(message_id, message["action"], message.get("data") or {})
        elif kind == "ping":
            self.push({"type": "pong", "id": message_id})
        else:
            self.push({"type": "auth_ok", "id": message_id, "data": {"user": self.user}})

    async def _subscribe(self, message_id: Any, channels: list[str]) -> None:
        new = [channel for channel in channels if channel not in self.channels]
        self.channels.update(channels)
        self.push({"type": "subscribed", "id": message_id, "channels": sorted(self.channels)})
        for channel in new:  # a channel already subscribed has its snapshot and events coming
            self.push({"type": "snapshot", "channel": channel, "data": await snapshot(self.hub.services, channel)})

    async def _action(self, message_id: Any, action: str, data: dict[str, Any]) -> None:
        entry = ACTIONS.get(action)
        if entry is None:
            self.error(message_id, "INVALID_REQUEST", f"Unknown action {action!r}", {"actions": sorted(ACTIONS)})
            return
        validator, handler = entry
        problem = next(iter(validator.iter_errors(data)), None)
        if problem is not None:
            self.error(message_id, "INVALID_REQUEST", f"Invalid data for {action}: {problem.message[:300]}")
            return
        if self.token is not None:
            await self.hub.services.auth.refresh()  # notice users changed by another process
        if not self.recheck():
            return
        if self.user is not None and self.user.get("role") != "administrator":
            self.error(message_id, "FORBIDDEN", f"{action} needs an administrator")
            return
        self.push({"type": "ack", "id": message_id, "action": action})
        try:
            result = await handler(self.hub.services, data)
        except Exception as exc:
            error = internal_error(exc, f"WebSocket action {action}")
            self.error(message_id, error.code, error.message, {**error.details, "action": action})
            return
        self.push({"type": "result", "id": message_id, "action": action, "success": True, "data": result})

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
                    if message.get("id", ...) is None:
                        message = {k: v for k, v in message.items() if k != "id"}
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
        log.warning("Dropping a WebSocket client that is not reading its messages")
        if self._sender is not None:
            self._sender.cancel()
        transport = self.request.transport
        if transport is not None:
            transport.abort()


async def snapshot(services: Services, channel: str) -> dict[str, Any]:
    """The current state of a channel, sent right after subscribing to it."""
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


def _coalesce_key(event: Event) -> Any:
    if event.type not in COALESCE:
        return None
    field = COALESCE[event.type]
    return (event.type, event.data.get(field) if field else None)
