"""The ComfyUI endpoints: /api/comfyui/... (health, execute, queue, history, clear, interrupt, view)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from ..comfy.protocol import MAX_PRIORITY, MIN_PRIORITY
from ..services.container import Services
from ..services.queue import NOT_GIVEN
from .context import services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, NUMBER, STRING, TIMESTAMP, array, nullable, obj

routes = Routes("comfyui")

COMFYUI_HEALTH = obj(
    status={"type": "string", "enum": ["healthy"]},
    version=nullable(STRING),
    queue=obj(pending=INTEGER, running=INTEGER),
)
EXECUTE_BODY = {
    "type": "object",
    "properties": {
        "workflow": {"description": "An API-format workflow: node id -> {class_type, inputs}, as ComfyUI's "
                                    "Workflow > Export (API) saves it"},
        "workflow_id": {"type": "string", "minLength": 1, "maxLength": 200,
                        "description": "A workflow of the library (GET /api/workflows) instead of `workflow`"},
        "priority": {"type": "integer", "minimum": MIN_PRIORITY, "maximum": MAX_PRIORITY, "default": 0,
                     "description": "Higher runs earlier among pending prompts; equal priorities keep "
                                    "submission order"},
    },
    "additionalProperties": False,
}
EXECUTED = obj(prompt_id=STRING, number=NUMBER, status={"enum": ["queued"]}, priority=INTEGER,
               node_errors=ANY_OBJECT)
QUEUE_ITEM = obj(prompt_id=STRING, number=NUMBER, priority=nullable(INTEGER), type=STRING)
HELD_ITEM = obj(prompt_id=STRING, number=NUMBER, priority=nullable(INTEGER), reason={"enum": ["held", "paused"]},
                held_at=NUMBER)
QUEUE = obj(queue_running=array(QUEUE_ITEM), queue_pending=array(QUEUE_ITEM), paused=BOOLEAN, held=array(HELD_ITEM),
            restored=nullable(obj(prompt_ids=array(STRING), at=NUMBER)))
OUTPUT_FILE = obj(filename=STRING, subfolder=STRING, type=STRING, node=STRING)
HISTORY = obj(
    prompt_id=STRING,
    status={"enum": ["pending", "running", "completed", "failed", "interrupted"]},
    number=nullable(NUMBER),
    priority=nullable(INTEGER),
    outputs={"type": "object", "properties": {"images": array(OUTPUT_FILE)}, "required": ["images"],
             "additionalProperties": array(OUTPUT_FILE)},
    node_outputs=ANY_OBJECT,
    started=nullable(TIMESTAMP),
    completed=nullable(TIMESTAMP),
    error=nullable(obj(message=STRING, exception_type=nullable(STRING), node_id=nullable(STRING),
                       node_type=nullable(STRING))),
    resources=nullable(obj(duration_seconds=NUMBER, peak_ram_gb=nullable(NUMBER), peak_vram_gb=nullable(NUMBER),
                           samples=INTEGER)),
)
CLEARED = obj(cleared=INTEGER, status={"enum": ["success"]})
INTERRUPTED = obj(status={"enum": ["interrupted", "idle"]})

_COMFYUI_ERRORS = ["COMFYUI_UNAVAILABLE"]


@routes.get("/api/comfyui/health", summary="Is ComfyUI answering, its version and queue size",
            response=COMFYUI_HEALTH, errors=_COMFYUI_ERRORS)
async def comfyui_health(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).queue.health())


@routes.post("/api/comfyui/execute", summary="Queue a workflow on ComfyUI", body=EXECUTE_BODY, response=EXECUTED,
             errors=["INVALID_WORKFLOW", "WORKFLOW_NOT_FOUND", "QUEUE_FULL", *_COMFYUI_ERRORS],
             description="Give either `workflow` or `workflow_id`. ComfyUI validates the workflow itself: when it "
                         "refuses, the answer is INVALID_WORKFLOW with ComfyUI's `error` and `node_errors` in "
                         "`details`. Official templates (`template:...`) are in the UI format and cannot be queued. "
                         "QUEUE_FULL when DASHBOARD_MAX_QUEUE prompts are already pending. `number` is ComfyUI's "
                         "queue number: lower runs first; priority p gives `sequence - p * 1e9`.",
             action="execute_workflow")
async def execute(services: Services, params: dict) -> dict:
    return await services.queue.execute(params.get("workflow", NOT_GIVEN), params.get("workflow_id"),
                                        int(params.get("priority", 0)))


@routes.get("/api/comfyui/queue", summary="ComfyUI's running and pending prompts, in run order", response=QUEUE,
            errors=_COMFYUI_ERRORS,
            description="`priority` is the dashboard priority a prompt was queued with, null for prompts queued "
                        "elsewhere (ComfyUI's editor); `type` guesses what it makes from its node types. `paused`: "
                        "the queue is paused (see POST /api/comfyui/queue/pause); `held`: the prompts waiting in "
                        "the dashboard, held one by one (`reason: held`) or by the pause; `restored`: the prompts "
                        "that were pending when ComfyUI went away and were queued again when it came back.")
async def get_queue(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).queue.queue())


@routes.get("/api/comfyui/history/{prompt_id}", summary="One prompt's status, outputs and times", response=HISTORY,
            errors=["PROMPT_NOT_FOUND", *_COMFYUI_ERRORS],
            description="`status`: pending or running (still queued), completed, failed (with `error`) or "
                        "interrupted. `outputs` collects the output files of every node by kind (images, gifs, "
                        "audio, ...); `node_outputs` is ComfyUI's per-node output. ComfyUI keeps history in memory "
                        "only: after it restarts an id is PROMPT_NOT_FOUND. `resources`: how long it ran and the "
                        "peak RAM and VRAM (the GPU ComfyUI computes on, else all GPUs) the background samples saw "
                        "meanwhile; `workflow_output` and the last `workflow_progress` events carry the same.")
async def get_history(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).queue.history(params["prompt_id"]))


@routes.delete("/api/comfyui/queue", summary="Clear pending prompts, interrupt the running one, or both",
               query={"type": {"type": "string", "enum": ["pending", "running", "all"], "default": "pending"}},
               response=CLEARED, errors=_COMFYUI_ERRORS,
               description="`cleared` counts the pending prompts removed plus the running prompt interrupted.",
               action="clear_queue")
async def clear_queue(services: Services, params: dict) -> dict:
    return await services.queue.clear(params.get("type", "pending"))


@routes.post("/api/comfyui/interrupt", summary="Interrupt the running prompt", response=INTERRUPTED,
             errors=_COMFYUI_ERRORS,
             description="`interrupted` when a prompt was running, `idle` when nothing was.", action="interrupt")
async def interrupt(services: Services, params: dict) -> dict:
    return await services.queue.interrupt()


_NAME = {"type": "string", "minLength": 1, "maxLength": 255}


@routes.get("/api/comfyui/view", summary="An output (or input, temp) file of ComfyUI, e.g. a generated image",
            content_type=("image/png", "image/webp", "image/jpeg", "video/mp4", "application/octet-stream"),
            response={"type": "string", "format": "binary"},
            query={"filename": {**_NAME, "x-required": True}, "subfolder": {"type": "string", "maxLength": 255},
                   "type": {"type": "string", "enum": ["output", "input", "temp"], "default": "output"}},
            errors=["NOT_FOUND", *_COMFYUI_ERRORS],
            description="What ComfyUI's `/view` serves (names as in a history record's `outputs`), streamed "
                        "through, with the same checks, so the page can show outputs where it cannot reach "
                        "ComfyUI's own `/view` (standalone with COMFYUI_URL, or on DASHBOARD_PORT inside ComfyUI).")
async def view_output(request: web.Request, params: dict) -> web.StreamResponse:
    output = services(request).queue.output_file(params["filename"], params.get("subfolder", ""),
                                                 params.get("type", "output"))
    async with output as file:
        response = web.StreamResponse(headers={"Cache-Control": "private, max-age=300",
                                               "X-Content-Type-Options": "nosniff",
                                               "Content-Security-Policy": "sandbox"})
        response.content_type = file.content_type
        if file.size is not None:
            response.content_length = file.size
        await response.prepare(request)
        try:
            async for chunk in file.chunks:
                await response.write(chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):  # ComfyUI, the disk or the browser
            if request.transport is not None:  # cut short: the browser sees a broken file, not a short one
                request.transport.close()
            return response
        await response.write_eof()
    return response
