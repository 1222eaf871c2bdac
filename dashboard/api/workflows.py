"""The workflow library endpoints: /api/workflows..."""

from __future__ import annotations

from aiohttp import web

from ..services.container import Services
from ..services.downloads.jobs import PRIORITIES
from ..services.workflows import SOURCES
from .context import services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, PLAN, STRING, array, nullable, obj

routes = Routes("workflows")

WORKFLOW_SUMMARY = obj(
    id=STRING, name=STRING, category=STRING, description=STRING, preset=nullable(STRING), path=STRING,
    source={"enum": list(SOURCES)}, format={"enum": ["api", "ui"]}, tags=array(STRING),
)
WORKFLOW_LIST = obj(
    workflows=array(WORKFLOW_SUMMARY), total=INTEGER, filtered=INTEGER, categories=array(STRING),
    errors=array(obj(file=STRING, error=STRING)),
)
WORKFLOW_DETAIL = {
    **WORKFLOW_SUMMARY,
    "properties": {**WORKFLOW_SUMMARY["properties"], "workflow": ANY_OBJECT},
    "required": [*WORKFLOW_SUMMARY["required"], "workflow"],
}
SAVED = obj(id=STRING, status={"enum": ["saved"]}, path=STRING, name=STRING)
DELETED = obj(id=STRING, status={"enum": ["deleted"]})
REQUIRED_MODEL = obj(type=STRING, name=STRING, path=STRING, nodes=array(STRING), installed=BOOLEAN,
                     presets=array(STRING), url=nullable(STRING))
REQUIREMENTS = obj(workflow_id=STRING, preset=nullable(STRING), models=array(REQUIRED_MODEL), missing=array(STRING),
                   presets=array(STRING), satisfied=BOOLEAN)

_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 120},
    "category": {"type": "string", "minLength": 1, "maxLength": 60},
    "description": {"type": "string", "maxLength": 2000},
    "preset": {"anyOf": [{"type": "string", "maxLength": 80}, {"type": "null"}]},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 50},
    "workflow": {"description": "An API-format workflow: node id -> {class_type, inputs}"},
}
SAVE_BODY = {"type": "object", "properties": _FIELDS, "required": ["name", "workflow"], "additionalProperties": False}
UPDATE_BODY = {"type": "object", "properties": _FIELDS, "minProperties": 1, "additionalProperties": False}
_READ_ONLY = ("Shipped and template workflows are read-only (FORBIDDEN); a user workflow with the id of a shipped "
              "one replaces it.")


@routes.get("/api/workflows", summary="List workflows", response=WORKFLOW_LIST, query={
    "category": {"type": "string", "maxLength": 100},
    "search": {"type": "string", "maxLength": 200},
    "source": {"type": "string", "enum": list(SOURCES)},
}, description="Shipped workflows, your saved ones, and ComfyUI's official templates (`format: ui`, ids "
               "`template:<name>`). Filters combine; `search` matches every word in id, name, description and "
               "tags. `errors` lists workflow files that were skipped and why.")
async def list_workflows(request: web.Request, params: dict) -> web.Response:
    body = await services(request).workflows.list(params.get("category"), params.get("search"), params.get("source"))
    return web.json_response(body)


@routes.get("/api/workflows/{workflow_id}", summary="One workflow with its JSON", response=WORKFLOW_DETAIL,
            errors=["WORKFLOW_NOT_FOUND"])
async def get_workflow(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).workflows.detail(params["workflow_id"]))


@routes.post("/api/workflows", summary="Save a workflow", body=SAVE_BODY, response=SAVED, status=201,
             errors=["INVALID_WORKFLOW"],
             description="The id is made from the name (lowercase letters, digits, underscores; a numeric suffix "
                         "when taken). The workflow must be in the API format.")
async def save_workflow(request: web.Request, params: dict) -> web.Response:
    answer = await services(request).workflows.save(
        params["name"], params["workflow"], params.get("category", "Custom"), params.get("description", ""),
        params.get("preset"), params.get("tags"))
    return web.json_response(answer, status=201)


@routes.put("/api/workflows/{workflow_id}", summary="Change a saved workflow", body=UPDATE_BODY, response=SAVED,
            errors=["WORKFLOW_NOT_FOUND", "FORBIDDEN", "INVALID_WORKFLOW"],
            description="Only the fields given change; the id stays. " + _READ_ONLY)
async def update_workflow(request: web.Request, params: dict) -> web.Response:
    changes = {k: params[k] for k in _FIELDS if k in params}
    return web.json_response(await services(request).workflows.update(params["workflow_id"], changes))


@routes.delete("/api/workflows/{workflow_id}", summary="Delete a saved workflow", response=DELETED,
               errors=["WORKFLOW_NOT_FOUND", "FORBIDDEN"], description=_READ_ONLY)
async def delete_workflow(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).workflows.delete(params["workflow_id"]))


@routes.get("/api/workflows/{workflow_id}/requirements", summary="The model files a workflow needs",
            response=REQUIREMENTS, errors=["WORKFLOW_NOT_FOUND"],
            description="Model files read from loader inputs (ckpt_name, unet_name, clip_name1, vae_name, lora_name, "
                        "...; for templates, the models they declare), whether each is installed, and the presets "
                        "that provide the missing ones (the workflow's own preset first).")
async def workflow_requirements(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).workflows.requirements(params["workflow_id"]))


_A_WORKFLOW = {"description": "A workflow in ComfyUI's UI format (as the editor saves it) or in the API format"}
NEEDS_BODY = obj(required=["workflow"], additional=False, workflow=_A_WORKFLOW)
NEEDED_FILE = obj(
    path=STRING, type=STRING, name=STRING, nodes=array(STRING), installed=BOOLEAN, url=nullable(STRING),
    presets=array(STRING), size=nullable(INTEGER), source=nullable({"enum": ["preset", "url"]}),
    installable=BOOLEAN, download_id=nullable(STRING), error=nullable(ANY_OBJECT),
)
NEEDS = obj(format={"enum": ["ui", "api"]}, files=array(NEEDED_FILE), missing=array(STRING), missing_bytes=INTEGER,
            installable=array(STRING))
UNAVAILABLE = array(obj(path=STRING, error=nullable(ANY_OBJECT)))
DOWNLOADING = array(obj(path=STRING, download_id=STRING))
INSTALL_MISSING_BODY = obj(required=["workflow"], additional=False, workflow=_A_WORKFLOW,
                           priority={"type": "string", "enum": list(PRIORITIES)})
INSTALL_MISSING = obj(status={"enum": ["queued", "downloading", "installed"]}, download_id=nullable(STRING),
                      files=array(STRING), bytes_to_download=INTEGER, unavailable=UNAVAILABLE, downloading=DOWNLOADING)
_HOW = ("Files are read from the loader widgets and inputs (ckpt_name, unet_name, vae_name, clip_name*, lora_name, "
        "...) and from the `properties.models` (`{name, url, directory}`) that nodes declare in the UI format, "
        "subgraphs included. A missing file is installed from a preset that lists the same path (`source: "
        "preset`), else from the URL the workflow declares (`source: url`, through the rules of POST "
        "/api/models/download, saved under the name the workflow loads); the URL's source is asked for the "
        "size, so a refusal (gated, early access, unknown host) shows in `error` before anything starts.")


@routes.post("/api/workflows/requirements", summary="The model files a workflow needs, and which are missing",
             body=NEEDS_BODY, response=NEEDS, errors=["INVALID_WORKFLOW"], description=_HOW,
             action="workflow_requirements", any_role=True)
async def requirements_of(services: Services, params: dict) -> dict:
    return await services.workflow_models.requirements(params["workflow"])


@routes.post("/api/workflows/install-missing", summary="Download the model files a workflow is missing",
             body=INSTALL_MISSING_BODY, response=INSTALL_MISSING, status=202, dry_run_response=PLAN,
             query={"dry_run": {"type": "boolean", "default": False}},
             errors=["INVALID_WORKFLOW", "INSUFFICIENT_STORAGE", "DOWNLOAD_FAILED"],
             description="One download (`download_id`) for every missing file that can be installed; files "
                         "already downloading are listed in `downloading`, files that cannot be installed in "
                         "`unavailable` with why. When none can, the answer is the first one's error. Nothing "
                         "missing: `installed`, no download. With `dry_run=true`, 200 and the plan: each file "
                         "with the bytes still to download, the volumes with their free space, and whether the "
                         "Hub lets HF_TOKEN into gated repositories. " + _HOW,
             action="install_missing_models")
async def install_missing(services: Services, params: dict) -> dict:
    return await services.workflow_models.install_missing(params["workflow"], params.get("priority", "normal"),
                                                          dry_run=params.get("dry_run", False))
