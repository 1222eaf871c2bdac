"""The preset endpoints: /api/presets..."""

from __future__ import annotations

from aiohttp import web

from ..services.container import Services
from ..services.downloads.jobs import PRIORITIES
from ..services.preset_schema import CATEGORIES
from .context import services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, NUMBER, PLAN, STRING, TIMESTAMP, array, nullable, obj

routes = Routes("presets")

_STATES = ["not_installed", "partial", "installing", "paused", "installed", "failed", "unsupported", "damaged"]
#: Set on a preset for a newer ComfyUI: the model folder types this ComfyUI lacks (null on all others).
REQUIRES = nullable(obj(comfyui_folders=array(STRING)))

PRESET_SUMMARY = obj(
    id=STRING, name=STRING, category=STRING, type={"enum": list(CATEGORIES.values())}, description=STRING,
    download_size=STRING, download_bytes=INTEGER, install_bytes=INTEGER, installed=BOOLEAN, use_case=STRING,
    tags=array(STRING),
    source={"enum": ["shipped", "user", "template"]}, gated=BOOLEAN, vram_gb=nullable(NUMBER), requires=REQUIRES,
    update_available=BOOLEAN,
)
PRESET_LIST = obj(
    presets=array(PRESET_SUMMARY), total=INTEGER, filtered=INTEGER, categories=array(STRING),
    errors=array(obj(file=STRING, error=STRING)),
)
PRESET_FILE = obj(path=STRING, url=STRING, size=STRING, size_bytes=INTEGER, sha256=nullable(STRING),
                  optional=BOOLEAN, installed=BOOLEAN, damaged=BOOLEAN)
PRESET_DETAIL = {
    **PRESET_SUMMARY,
    "properties": {
        **PRESET_SUMMARY["properties"],
        "install_date": nullable(TIMESTAMP),
        "license": nullable(STRING),
        "license_url": nullable(STRING),
        "requirements": obj(vram_gb=nullable(NUMBER), disk_gb=NUMBER),
        "files": array(PRESET_FILE),
        "dependencies": array(STRING),
        "workflows": array(STRING),
    },
    "required": [*PRESET_SUMMARY["required"], "install_date", "files", "dependencies", "workflows"],
}
PRESET_STATUS = obj(
    required=["preset_id", "status", "progress", "current_file", "download_speed_mbps", "eta_seconds", "files"],
    preset_id=STRING, status={"enum": _STATES}, progress=NUMBER, current_file=nullable(STRING),
    download_speed_mbps=nullable(NUMBER), eta_seconds=nullable(INTEGER),
    files=obj(total=INTEGER, completed=INTEGER, failed=INTEGER), download_id=STRING, error=nullable(ANY_OBJECT),
)
INSTALL_REQUEST = obj(required=[], additional=False, force=BOOLEAN,
                      priority={"type": "string", "enum": list(PRIORITIES)})
INSTALL_ANSWER = obj(status={"enum": ["installing", "installed"]}, preset_id=STRING,
                     download_id=nullable(STRING), estimated_time_seconds=nullable(INTEGER), total_size_gb=NUMBER)
UNINSTALL_ANSWER = obj(status={"enum": ["uninstalled"]}, preset_id=STRING, files_removed=INTEGER,
                       space_freed_gb=NUMBER, space_freed_bytes=INTEGER,
                       errors=array(obj(path=STRING, code=STRING, message=STRING)))


@routes.get("/api/presets", summary="List presets", response=PRESET_LIST, query={
    "category": {"type": "string", "enum": list(CATEGORIES)},
    "type": {"type": "string", "enum": list(CATEGORIES.values())},
    "installed": {"type": "boolean"},
    "search": {"type": "string", "maxLength": 200},
}, description="Filters combine. `search` matches every word, case-insensitively, in name, description and tags. "
               "`errors` lists preset files that were skipped and why. A preset for a newer ComfyUI than this one "
               "(it uses a model folder type this ComfyUI lacks, such as `latent_upscale_models` before ComfyUI "
               "had it) is listed with `requires.comfyui_folders` naming those folders, `installed: false`, and "
               "cannot be installed; all other presets have `requires: null`.")
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
            errors=["PRESET_NOT_FOUND"],
            description="`unsupported`: the preset needs a newer ComfyUI (see `requires` in the listing).")
async def preset_status(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).presets.status(params["preset_id"]))


PLAN_FILE = obj(path=STRING, size_bytes=INTEGER, preset_id=STRING, optional=BOOLEAN, present=BOOLEAN,
                verified=BOOLEAN, download=BOOLEAN, bytes_to_download=INTEGER, shared_with=array(STRING))
PRESET_PLAN = {**PLAN, "properties": {
    **PLAN["properties"], "preset_id": STRING, "name": STRING, "files": array(PLAN_FILE),
    "dependencies": array(obj(id=STRING, name=STRING, installed=BOOLEAN, bytes_to_download=INTEGER))},
    "required": [*PLAN["required"], "preset_id", "name"]}


@routes.get("/api/presets/{preset_id}/plan", summary="What installing a preset would download, before the first byte",
            response=PRESET_PLAN, errors=["PRESET_NOT_FOUND", "PRESET_UNSUPPORTED"], action="preset_plan",
            any_role=True,
            description="Every file of the preset and of its dependencies: its size, whether it is present and "
                        "verified, whether installing downloads it and how many bytes of it are still missing (a "
                        "paused `.part` counts), and which other presets list it (`shared_with`). "
                        "`bytes_to_download` is the true total an install queues, dependencies included; "
                        "`volumes` the free space of each volume the files go to and whether they fit; `access` "
                        "asks the Hub, once per gated repository still to download, whether HF_TOKEN is let in "
                        "(`needs_token`: no token; `token_refused`: a bad token or a licence not accepted). "
                        "Nothing is queued or written.")
async def preset_plan(services: Services, params: dict) -> dict:
    return await services.downloads.plans.preset(params["preset_id"])


@routes.post("/api/presets/{preset_id}/install", summary="Install a preset in the background", status=202,
             body=INSTALL_REQUEST, response=INSTALL_ANSWER,
             errors=["PRESET_NOT_FOUND", "PRESET_ALREADY_INSTALLED", "PRESET_UNSUPPORTED", "INSUFFICIENT_STORAGE"],
             description="Dependencies first; files already present and verified are skipped. Installing a preset "
                         "that is being installed answers its running download. `force` fetches again files "
                         "that are present but were not verified by the dashboard. A preset for a newer ComfyUI "
                         "answers 409 `PRESET_UNSUPPORTED`, with `comfyui_folders` in `details`.",
             action="install_preset")
async def install_preset(services: Services, params: dict) -> dict:
    return await services.downloads.install(params["preset_id"], force=params.get("force", False),
                                            priority=params.get("priority", "normal"))


@routes.delete("/api/presets/{preset_id}", summary="Uninstall a preset", response=UNINSTALL_ANSWER,
               errors=["PRESET_NOT_FOUND", "PRESET_UNSUPPORTED", "MODEL_IN_USE"], query={"force": {"type": "boolean"}},
               description="Cancels its download, then removes its files except those another installed preset uses. "
                           "While a queued or running prompt names one of those files the answer is `MODEL_IN_USE` "
                           "(409, the files in `details.paths`) and nothing changes, unless `force=true`.",
               action="uninstall_preset")
async def uninstall_preset(services: Services, params: dict) -> dict:
    return await services.downloads.uninstall(params["preset_id"], force=params.get("force", False))
