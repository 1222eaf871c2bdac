"""The client messages /ws understands, by `type`: each registered with the schema it is checked
against before its handler runs.

A handler answers by pushing messages on its connection, and raises a DashboardError for anything
the client got wrong; the connection turns that into the `error` answer (see `Connection.receive`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from ..errors import Forbidden, internal_error, invalid
from . import messages
from .actions import ACTIONS
from .channels import CHANNELS, snapshot

if TYPE_CHECKING:
    from .connection import Connection

CommandHandler = Callable[["Connection", dict[str, Any]], Awaitable[None]]

_ID = {"type": ["string", "integer"]}
_CHANNEL_LIST = {"type": "array", "items": {"enum": list(CHANNELS)}, "minItems": 1, "uniqueItems": True}


@dataclass(frozen=True)
class Command:
    """One message type: the validator of the whole message, and its handler."""

    type: str
    validator: Draft202012Validator
    handler: CommandHandler


#: Message type -> Command.
COMMANDS: dict[str, Command] = {}


def command(type_: str, properties: dict[str, dict], required: tuple[str, ...] = ()
            ) -> Callable[[CommandHandler], CommandHandler]:
    """Register the decorated handler for messages of `type_`: an object with these properties
    (every message may carry an `id`, which its answers repeat)."""

    def register(handler: CommandHandler) -> CommandHandler:
        schema = {"type": "object", "properties": {**properties, "id": _ID}, "required": list(required)}
        COMMANDS[type_] = Command(type_, Draft202012Validator(schema), handler)
        return handler

    return register


def message_id(message: Any) -> Any:
    """The id the answers to `message` carry: its `id` when that is a string or an integer."""
    value = message.get("id") if isinstance(message, dict) else None
    return value if isinstance(value, (str, int)) else None


async def dispatch(connection: Connection, message: Any) -> None:
    """Check one parsed client message against its command's schema and run the command."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise invalid("Message must be a JSON object with a string 'type'")
    kind = message["type"]
    entry = COMMANDS.get(kind)
    if entry is None:
        raise invalid(f"Unknown message type {kind!r}", types=sorted(COMMANDS))
    problem = next(iter(entry.validator.iter_errors(message)), None)
    if problem is not None:
        raise invalid(f"Invalid {kind} message: {problem.message[:300]}")
    await entry.handler(connection, message)


@command("subscribe", {"channels": _CHANNEL_LIST}, ("channels",))
async def subscribe(connection: Connection, message: dict[str, Any]) -> None:
    """Answer `subscribed`, then a snapshot of each channel that was not subscribed yet (a channel
    already subscribed has its snapshot and events coming)."""
    new = connection.subscribe(message["channels"])
    connection.push(messages.subscribed(message.get("id"), connection.channels))
    for channel in new:
        connection.push(messages.snapshot(channel, await snapshot(connection.hub.services, channel)))


@command("unsubscribe", {"channels": _CHANNEL_LIST}, ("channels",))
async def unsubscribe(connection: Connection, message: dict[str, Any]) -> None:
    """Stop the channels' events; answer the channels still subscribed."""
    connection.unsubscribe(message["channels"])
    connection.push(messages.unsubscribed(message.get("id"), connection.channels))


@command("action", {"action": {"type": "string"}, "data": {"type": "object"}}, ("action",))
async def action(connection: Connection, message: dict[str, Any]) -> None:
    """Run an action: checked, then (with auth on) the socket's user checked again, then `ack`, and
    its `result` or an `error` whose details name the action."""
    name, answer_id = message["action"], message.get("id")
    entry = ACTIONS.get(name)
    if entry is None:
        raise invalid(f"Unknown action {name!r}", actions=sorted(ACTIONS))
    data = message.get("data") or {}
    problem = next(iter(entry.validator.iter_errors(data)), None)
    if problem is not None:
        raise invalid(f"Invalid data for {name}: {problem.message[:300]}")
    if not await connection.authorize():
        return  # signed out: the socket is closing
    if not entry.any_role and connection.user is not None and connection.user.get("role") != "administrator":
        raise Forbidden(f"{name} needs an administrator")
    connection.push(messages.ack(answer_id, name))
    try:
        data = await entry.call(connection.hub.services, data)
    except Exception as exc:
        connection.push(messages.error(answer_id, internal_error(exc, f"WebSocket action {name}"), action=name))
        return
    connection.push(messages.result(answer_id, name, data))


@command("auth", {"token": {"type": "string"}}, ("token",))
async def auth(connection: Connection, message: dict[str, Any]) -> None:
    """Once authenticated (or with auth off): answer the socket's user."""
    connection.push(messages.auth_ok(connection.user, message.get("id")))


@command("ping", {})
async def ping(connection: Connection, message: dict[str, Any]) -> None:
    """Answer `pong`."""
    connection.push(messages.pong(message.get("id")))
