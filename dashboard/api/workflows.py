"""The workflow library endpoints: /api/workflows..."""

from __future__ import annotations

from aiohttp import web

from ..services.workflows import SOURCES
from .context import services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, STRING, array, nullable, obj

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
                     presets=array(STRING))
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
