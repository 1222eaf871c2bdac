"""The download endpoints: /api/downloads..."""

from __future__ import annotations

from aiohttp import web

from ..config import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_FILE
from ..services.container import Services
from ..services.downloads.jobs import PRIORITIES
from .context import services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, MODEL_SOURCE, NUMBER, STRING, array, nullable, obj

routes = Routes("downloads")

PRIORITY = {"type": "string", "enum": list(PRIORITIES)}
DOWNLOAD_STATES = ["queued", "downloading", "paused", "completed", "failed", "cancelled"]
DOWNLOAD = obj(
    id=STRING, preset_id=nullable(STRING), status={"enum": DOWNLOAD_STATES}, priority=PRIORITY, progress=NUMBER,
    speed_mbps=NUMBER, eta_seconds=nullable(INTEGER), current_file=nullable(STRING), bytes_done=INTEGER,
    bytes_total=INTEGER, files=obj(total=INTEGER, completed=INTEGER, failed=INTEGER), connections=INTEGER,
    created_at=NUMBER, error=nullable(ANY_OBJECT), source=nullable(MODEL_SOURCE), path=nullable(STRING),
)
DOWNLOAD_LIST = obj(downloads=array(DOWNLOAD), active=INTEGER, total=INTEGER, yielding=BOOLEAN)
#: What may be changed while downloads run.
SETTINGS_CHANGES = {
    "max_bandwidth_bytes": {**nullable({"type": "integer", "minimum": 1}),
                            "description": "all downloads together, bytes a second; null: unlimited"},
    "connections_per_file": {"type": "integer", "minimum": 1, "maximum": MAX_CONNECTIONS_PER_FILE},
    "max_connections": {"type": "integer", "minimum": 1, "maximum": MAX_CONNECTIONS},
    "yield_to_generation": {**BOOLEAN, "description": "slow down while ComfyUI runs a prompt"},
    "yield_share": {"type": "number", "minimum": 0.01, "maximum": 1,
                    "description": "the share of the budget downloads keep while yielding"},
}
SETTINGS_BODY = {**obj(required=[], additional=False, **SETTINGS_CHANGES), "minProperties": 1}
DOWNLOAD_SETTINGS = obj(**SETTINGS_CHANGES, yielding=BOOLEAN, connections_in_use=INTEGER)
STATE_CHANGE = obj(status=STRING, download_id=STRING)
CANCELLED = obj(status={"enum": ["cancelled"]}, download_id=STRING, files_removed=BOOLEAN)


@routes.get("/api/downloads", summary="Every download, active ones first", response=DOWNLOAD_LIST,
            description="`speed_mbps` is in megabytes per second. A preset's download has its `preset_id`, and "
                        "`source` and `path` null; a model downloaded from a URL (`POST /api/models/download`) has "
                        "`preset_id` null, its `source` and its one `path`.")
async def list_downloads(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).downloads.list())


@routes.get("/api/downloads/settings", summary="The limits every download shares", response=DOWNLOAD_SETTINGS,
            description="`yielding` is true while ComfyUI runs a prompt and `yield_to_generation` is on: downloads "
                        "then keep `yield_share` of their budget.")
async def get_download_settings(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).downloads.settings())


@routes.put("/api/downloads/settings", summary="Change the download limits while downloads run",
            response=DOWNLOAD_SETTINGS, body=SETTINGS_BODY, action="set_download_settings")
async def put_download_settings(services: Services, params: dict) -> dict:
    changes = {name: params[name] for name in SETTINGS_CHANGES if name in params}
    return await services.downloads.update_settings(changes)


@routes.get("/api/downloads/{download_id}", summary="One download", response=DOWNLOAD,
            errors=["DOWNLOAD_NOT_FOUND"])
async def get_download(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).downloads.get(params["download_id"]))


@routes.post("/api/downloads/{download_id}/pause", summary="Pause a download (its partial files are kept)",
             response=STATE_CHANGE, errors=["DOWNLOAD_NOT_FOUND", "DOWNLOAD_CONFLICT"], action="pause_download")
async def pause_download(services: Services, params: dict) -> dict:
    return await services.downloads.pause(params["download_id"])


@routes.post("/api/downloads/{download_id}/resume", summary="Resume a paused or failed download",
             response=STATE_CHANGE, errors=["DOWNLOAD_NOT_FOUND", "DOWNLOAD_CONFLICT"], action="resume_download")
async def resume_download(services: Services, params: dict) -> dict:
    return await services.downloads.resume(params["download_id"])


@routes.post("/api/downloads/{download_id}/priority", summary="Change a download's priority", response=DOWNLOAD,
             body=obj(priority=PRIORITY, additional=False), errors=["DOWNLOAD_NOT_FOUND"])
async def set_download_priority(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).downloads.set_priority(params["download_id"],
                                                                           params["priority"]))


@routes.delete("/api/downloads/{download_id}", summary="Cancel a download and remove its partial files",
               response=CANCELLED, errors=["DOWNLOAD_NOT_FOUND", "DOWNLOAD_CONFLICT"], action="cancel_download")
async def cancel_download(services: Services, params: dict) -> dict:
    return await services.downloads.cancel(params["download_id"])
