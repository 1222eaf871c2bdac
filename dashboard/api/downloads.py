"""The download endpoints: /api/downloads..."""

from __future__ import annotations

from aiohttp import web

from ..services.downloads.manager import PRIORITIES
from .context import services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, NUMBER, STRING, array, nullable, obj

routes = Routes("downloads")

PRIORITY = {"type": "string", "enum": list(PRIORITIES)}
DOWNLOAD_STATES = ["queued", "downloading", "paused", "completed", "failed", "cancelled"]
DOWNLOAD = obj(
    id=STRING, preset_id=STRING, status={"enum": DOWNLOAD_STATES}, priority=PRIORITY, progress=NUMBER,
    speed_mbps=NUMBER, eta_seconds=nullable(INTEGER), current_file=nullable(STRING), bytes_done=INTEGER,
    bytes_total=INTEGER, files=obj(total=INTEGER, completed=INTEGER, failed=INTEGER), created_at=NUMBER,
    error=nullable(ANY_OBJECT),
)
DOWNLOAD_LIST = obj(downloads=array(DOWNLOAD), active=INTEGER, total=INTEGER)
STATE_CHANGE = obj(status=STRING, download_id=STRING)
CANCELLED = obj(status={"enum": ["cancelled"]}, download_id=STRING, files_removed=BOOLEAN)


@routes.get("/api/downloads", summary="Every download, active ones first", response=DOWNLOAD_LIST,
            description="`speed_mbps` is in megabytes per second.")
async def list_downloads(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).downloads.list())


@routes.get("/api/downloads/{download_id}", summary="One download", response=DOWNLOAD,
            errors=["DOWNLOAD_NOT_FOUND"])
async def get_download(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).downloads.get(params["download_id"]))


@routes.post("/api/downloads/{download_id}/pause", summary="Pause a download (its partial files are kept)",
             response=STATE_CHANGE, errors=["DOWNLOAD_NOT_FOUND", "DOWNLOAD_CONFLICT"])
async def pause_download(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).downloads.pause(params["download_id"]))


@routes.post("/api/downloads/{download_id}/resume", summary="Resume a paused or failed download",
             response=STATE_CHANGE, errors=["DOWNLOAD_NOT_FOUND", "DOWNLOAD_CONFLICT"])
async def resume_download(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).downloads.resume(params["download_id"]))


@routes.post("/api/downloads/{download_id}/priority", summary="Change a download's priority", response=DOWNLOAD,
             body=obj(priority=PRIORITY, additional=False), errors=["DOWNLOAD_NOT_FOUND"])
async def set_download_priority(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).downloads.set_priority(params["download_id"],
                                                                           params["priority"]))


@routes.delete("/api/downloads/{download_id}", summary="Cancel a download and remove its partial files",
               response=CANCELLED, errors=["DOWNLOAD_NOT_FOUND", "DOWNLOAD_CONFLICT"])
async def cancel_download(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).downloads.cancel(params["download_id"]))
