"""Every message the server sends on /ws, built in one place.

An answer to a client message carries that message's `id` (left out when it had none).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import DashboardError


def _answer(type_: str, message_id: Any, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": type_}
    if message_id is not None:
        message["id"] = message_id
    message.update(fields)
    return message


def error(message_id: Any, exc: DashboardError, **details: Any) -> dict[str, Any]:
    """`error`: the error's code, message and details (plus `details`), as every error body has them."""
    body = exc.to_dict()["error"]
    return _answer("error", message_id, data={**body, "details": {**body["details"], **details}})


def auth_ok(user: dict[str, Any] | None, message_id: Any = None) -> dict[str, Any]:
    """`auth_ok`: the socket's user (None with auth off)."""
    return _answer("auth_ok", message_id, data={"user": user})


def subscribed(message_id: Any, channels: Iterable[str]) -> dict[str, Any]:
    """`subscribed`: every channel the socket now receives."""
    return _answer("subscribed", message_id, channels=sorted(channels))


def unsubscribed(message_id: Any, channels: Iterable[str]) -> dict[str, Any]:
    """`unsubscribed`: every channel the socket still receives."""
    return _answer("unsubscribed", message_id, channels=sorted(channels))


def snapshot(channel: str, data: dict[str, Any]) -> dict[str, Any]:
    """`snapshot`: a channel's current state, sent once when it is subscribed."""
    return {"type": "snapshot", "channel": channel, "data": data}


def pong(message_id: Any) -> dict[str, Any]:
    """`pong`: the answer to `ping`."""
    return _answer("pong", message_id)


def ack(message_id: Any, action: str) -> dict[str, Any]:
    """`ack`: an action was accepted and runs now; its `result` or `error` follows."""
    return _answer("ack", message_id, action=action)


def result(message_id: Any, action: str, data: Any) -> dict[str, Any]:
    """`result`: what an action answered (what its HTTP operation answers)."""
    return _answer("result", message_id, action=action, success=True, data=data)


def event(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """A bus event, sent to every socket subscribed to its channel."""
    return {"type": type_, "data": data}
