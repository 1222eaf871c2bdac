"""The preset endpoints: /api/presets..."""

from __future__ import annotations

from aiohttp import web

from ..services.preset_schema import CATEGORIES
from .context import services
from .routing import Routes
from .schemas import BOOLEAN, INTEGER, NUMBER, STRING, TIMESTAMP, array, nullable, obj

routes = Routes("presets")

PRESET_ID = {"type": "string"}
_STATES = ["not_installed", "partial", "installing", "paused", "installed", "failed"]

PRESET_SUMMARY = obj(
    id=STRING, name=STRING, category=STRING, type={"enum": list(CATEGORIES.values())}, description=STRING,
    download_size=STRING, download_bytes=INTEGER, installed=BOOLEAN, use_case=STRING, tags=array(STRING),
    source={"enum": ["shipped", "user", "template"]}, gated=BOOLEAN, vram_gb=nullable(NUMBER),
)
PRESET_LIST = obj(
    presets=array(PRESET_SUMMARY), total=INTEGER, filtered=INTEGER, categories=array(STRING),
    errors=array(obj(file=STRING, error=STRING)),
)
PRESET_FILE = obj(path=STRING, url=STRING, size=STRING, size_bytes=INTEGER, sha256=nullable(STRING),
                  optional=BOOLEAN, installed=BOOLEAN)
PRESET_DETAIL = {
    **PRESET_SUMMARY,
    "properties": {
        **PRESET_SUMMARY["properties"],
        "install_date": nullable(TIMESTAMP),
        "license": nullable(STRING),
        "requirements": obj(vram_gb=nullable(NUMBER), disk_gb=NUMBER),
        "files": array(PRESET_FILE),
        "dependencies": array(STRING),
        "workflows": array(STRING),
    },
    "required": [*PRESET_SUMMARY["required"], "install_date", "files", "dependencies", "workflows"],
}
PRESET_STATUS = obj(
    preset_id=STRING, status={"enum": _STATES}, progress=NUMBER, current_file=nullable(STRING),
    download_speed_mbps=nullable(NUMBER), eta_seconds=nullable(INTEGER),
    files=obj(total=INTEGER, completed=INTEGER, failed=INTEGER),
)


@routes.get("/api/presets", summary="List presets", response=PRESET_LIST, query={
    "category": {"type": "string", "enum": list(CATEGORIES)},
    "type": {"type": "string", "enum": list(CATEGORIES.values())},
    "installed": {"type": "boolean"},
    "search": {"type": "string", "maxLength": 200},
}, description="Filters combine. `search` matches every word, case-insensitively, in name, description and tags. "
               "`errors` lists preset files that were skipped and why.")
async def list_presets(request: web.Request, params: dict) -> web.Response:
    body = await services(request).presets.list(
        category=params.get("category"), type_=params.get("type"), installed=params.get("installed"),
        search=params.get("search"))
    return web.json_response(body)


@routes.get("/api/presets/{preset_id}", summary="One preset with its files", response=PRESET_DETAIL,
            errors=["PRESET_NOT_FOUND"])
async def get_preset(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).presets.detail(params["preset_id"]))


@routes.get("/api/presets/{preset_id}/status", summary="Installation status of a preset", response=PRESET_STATUS,
            errors=["PRESET_NOT_FOUND"])
async def preset_status(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).presets.status(params["preset_id"]))
