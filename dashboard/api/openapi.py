"""GET /api/openapi.json: the OpenAPI 3.1 document, built from the route tables."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import __version__
from ..errors import ErrorCode
from .context import OPERATIONS
from .routing import PATH_PARAM_SCHEMA, Operation, Routes, without_extensions
from .schemas import ANY_OBJECT, ERROR

routes = Routes("meta")
_DOCUMENT_PATH = "/api/openapi.json"


def build_document(operations: list[Operation], server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI document describing `operations`."""
    paths: dict[str, dict] = {}
    for op in operations:
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ComfyUI Dashboard API",
            "version": __version__,
            "description": "Presets, downloads, models, ComfyUI queue, workflows and system status. "
                           "Every error answers {\"error\": {code, message, details}}.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "headers": {
                "X-API-Version": {"description": "The API version that answered", "schema": {"type": "string"}},
            },
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAM_SCHEMA} for name in op.path_params
    ] + [
        {"name": name, "in": "query", "required": bool(schema.get("x-required")),
         "schema": without_extensions(schema)}
        for name, schema in op.query.items()
    ]
    success = {"description": "Success", "headers": {"X-API-Version": {"$ref": "#/components/headers/X-API-Version"}}}
    if op.response is not None:
        types = (op.content_type,) if isinstance(op.content_type, str) else op.content_type
        success["content"] = {content_type: {"schema": op.response} for content_type in types}
    responses: dict[str, Any] = {str(op.status): success}
    if op.dry_run_response is not None:
        responses["200"] = {**success, "description": "Dry run: what would be done; nothing is started",
                            "content": {"application/json": {"schema": op.dry_run_response}}}
    for code in ("INVALID_REQUEST", *op.errors):
        status = str(ErrorCode(code).status)
        entry = responses.setdefault(status, {
            "description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        })
        entry["description"] = ", ".join(filter(None, [entry["description"], code]))
    result: dict[str, Any] = {
        "operationId": f"{op.method.lower()}_{op.handler.__name__}",
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if op.description:
        result["description"] = op.description
    if op.action is not None:  # also a WebSocket action, whose data is these parameters and body fields
        result["x-websocket-action"] = op.action
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        result["requestBody"] = {"required": False, "content": {"application/json": {"schema": op.body}}}
    return result


@routes.get(_DOCUMENT_PATH, summary="This API's OpenAPI 3.1 document", response=ANY_OBJECT)
async def openapi_document(request: web.Request, params: dict) -> web.Response:
    prefix = request.path[: -len(_DOCUMENT_PATH)] or "/"
    operations = request.app[OPERATIONS]
    return web.json_response(build_document(operations, prefix))


def all_operations(tables: list[Routes]) -> list[Operation]:
    """Every operation of the given tables, in declaration order."""
    return [op for table in tables for op in table.operations]
