"""The ComfyUI endpoints: /api/comfyui/..."""

from __future__ import annotations

from aiohttp import web

from .context import services
from .routing import Routes
from .schemas import INTEGER, STRING, nullable, obj

routes = Routes("comfyui")

COMFYUI_HEALTH = obj(
    status={"type": "string", "enum": ["healthy"]},
    version=nullable(STRING),
    queue=obj(pending=INTEGER, running=INTEGER),
)


@routes.get("/api/comfyui/health", summary="Is ComfyUI answering, its version and queue size",
            response=COMFYUI_HEALTH, errors=["COMFYUI_UNAVAILABLE"])
async def comfyui_health(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).backend.health())
