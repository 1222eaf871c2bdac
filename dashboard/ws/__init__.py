"""The WebSocket hub at /ws: channels, subscriptions, actions, and fan-out of bus events.

- `hub`: the Hub, every open socket, fed from the event bus; auth rechecks.
- `connection`: one socket, owning its subscriptions, bounded outbox and sender.
- `commands`: the client message types, each with its schema and handler (a table, not a chain).
- `actions`: the actions, built from the HTTP route operations that name one.
- `channels`: the channels, their snapshots and which events coalesce.
- `messages`: every message the server sends.

Every problem is answered with an `error` message (the one error shape) and the socket stays
open. Heartbeats detect dead peers. With auth on, every action checks the socket's token again
(the user's current role; FORBIDDEN for a viewer), and a socket whose token is logged out, or
whose user is removed or replaced, is closed with code 4401.
"""

from __future__ import annotations

from .channels import CHANNELS
from .connection import CLOSE_UNAUTHORIZED, Connection
from .hub import Authenticator, Hub

__all__ = ["CHANNELS", "CLOSE_UNAUTHORIZED", "Authenticator", "Connection", "Hub"]
