"""GET /ws: the live feed (protocol in the `dashboard.ws` package and the README)."""

from __future__ import annotations

from aiohttp import web

from .context import HUB
from .routing import Routes

routes = Routes("live")


@routes.get("/ws", summary="WebSocket: subscribe to downloads, queue, system and workflows; send actions",
            status=101, public=True,
            description="Client messages: subscribe/unsubscribe {channels}, action {action, data, id}, "
                        "auth {token}, ping. With ENABLE_AUTH on, authenticate with ?token=, the session cookie "
                        "or an auth message within 5 s, else the socket closes with code 4401.")
async def websocket(request: web.Request, params: dict) -> web.StreamResponse:
    return await request.app[HUB].handle(request)
