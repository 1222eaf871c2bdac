"""Queue control endpoints: hold, release and move prompts, pause and resume the queue, export and
import it, and free ComfyUI's memory (/api/comfyui/queue/..., /api/comfyui/free)."""

from __future__ import annotations

from ..comfy.protocol import MAX_PRIORITY, MIN_PRIORITY
from ..services.container import Services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, NUMBER, STRING, array, nullable, obj

routes = Routes("comfyui")

_UNAVAILABLE = "COMFYUI_UNAVAILABLE"
HELD = obj(status={"enum": ["held"]}, prompt_id=STRING)
RELEASED = obj(status={"enum": ["queued"]}, prompt_id=STRING, number=NUMBER)
MOVE_BODY = {
    "type": "object",
    "properties": {
        "priority": {"type": "integer", "minimum": MIN_PRIORITY, "maximum": MAX_PRIORITY},
        "position": {"enum": ["top", "bottom"]},
        "before": {"type": "string", "minLength": 1, "maxLength": 200},
        "after": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
}
MOVED = obj(prompt_id=STRING, number=NUMBER, priority=nullable(INTEGER))
PAUSED = obj(required=["paused", "held"], paused=BOOLEAN, held=INTEGER, released=array(STRING))
EXPORT_ITEM = obj(prompt_id=STRING, number=NUMBER, priority=nullable(INTEGER), workflow=ANY_OBJECT,
                  extra_data=ANY_OBJECT, outputs=array({}))
EXPORT = obj(format={"enum": ["comfyui-dashboard-queue"]}, version=INTEGER, exported_at=NUMBER, paused=BOOLEAN,
             pending=array(EXPORT_ITEM), held=array(EXPORT_ITEM))
IMPORT_BODY = {
    "type": "object",
    "properties": {"format": {"type": "string"}, "version": {"type": "integer"},
                   "pending": {"type": "array", "maxItems": 10_000}, "held": {"type": "array", "maxItems": 10_000},
                   "exported_at": {"type": "number"}, "paused": {"type": "boolean"}},
    "required": ["format"], "additionalProperties": False,
}
IMPORTED = obj(queued=array(STRING), held=array(STRING), skipped=array(STRING))
FREE_BODY = obj(required=[], additional=False, unload_models=BOOLEAN, free_memory=BOOLEAN)
FREED = obj(status={"enum": ["requested"]}, unload_models=BOOLEAN, free_memory=BOOLEAN)


@routes.post("/api/comfyui/queue/pause", summary="Pause the queue: the running prompt finishes, the rest wait",
             response=PAUSED, errors=[_UNAVAILABLE], action="pause_queue",
             description="Every pending prompt, and every prompt queued while paused by anyone (ComfyUI's editor "
                         "too), waits in the dashboard's held list; the running one finishes. The pause is kept "
                         "across restarts. With a remote ComfyUI, new prompts are taken from its queue as they "
                         "appear: one ComfyUI starts at once (an idle worker) runs.")
async def pause_queue(services: Services, params: dict) -> dict:
    return await services.queue_control.pause()


@routes.post("/api/comfyui/queue/resume", summary="Resume the queue", response=PAUSED, errors=[_UNAVAILABLE],
             action="resume_queue",
             description="The prompts the pause held go back on ComfyUI's queue in their order (`released`); "
                         "prompts held one by one stay held.")
async def resume_queue(services: Services, params: dict) -> dict:
    return await services.queue_control.resume()


@routes.get("/api/comfyui/queue/export", summary="The pending and held prompts as a JSON document",
            response=EXPORT, errors=[_UNAVAILABLE], action="export_queue", any_role=True)
async def export_queue(services: Services, params: dict) -> dict:
    return await services.queue_control.export()


@routes.post("/api/comfyui/queue/import", summary="Queue the prompts of an exported queue", body=IMPORT_BODY,
             response=IMPORTED, errors=["INVALID_WORKFLOW", _UNAVAILABLE], action="import_queue",
             description="The document `GET /api/comfyui/queue/export` answers: its pending prompts are queued "
                         "(with their ids and numbers), its held ones held; a prompt already there is `skipped`.")
async def import_queue(services: Services, params: dict) -> dict:
    return await services.queue_control.import_queue(params)


@routes.post("/api/comfyui/queue/{prompt_id}/hold", summary="Hold a pending prompt in the dashboard",
             response=HELD, errors=["PROMPT_NOT_FOUND", "PROMPT_NOT_PENDING", _UNAVAILABLE], action="hold_prompt",
             description="The prompt leaves ComfyUI's queue (ComfyUI's own UI no longer lists it) for the "
                         "dashboard's held list, kept across restarts, until released. `PROMPT_NOT_PENDING` for "
                         "a prompt that runs or ran.")
async def hold_prompt(services: Services, params: dict) -> dict:
    return await services.queue_control.hold(params["prompt_id"])


@routes.post("/api/comfyui/queue/{prompt_id}/release", summary="Put a held prompt back on ComfyUI's queue",
             response=RELEASED, errors=["PROMPT_NOT_FOUND", "INVALID_WORKFLOW", _UNAVAILABLE],
             action="release_prompt",
             description="With its prompt id and queue number: it runs where its priority puts it.")
async def release_prompt(services: Services, params: dict) -> dict:
    return await services.queue_control.release(params["prompt_id"])


@routes.patch("/api/comfyui/queue/{prompt_id}", summary="Move a pending prompt", body=MOVE_BODY, response=MOVED,
              errors=["PROMPT_NOT_FOUND", "PROMPT_NOT_PENDING", "INVALID_WORKFLOW", _UNAVAILABLE],
              action="move_prompt",
              description="`{priority}` gives it the number a submission of that priority would have had when it "
                          "was queued; `{position: top|bottom}` puts it before or after every other pending prompt; "
                          "`{before: id}` or `{after: id}` right next to another pending prompt. "
                          "Any pending prompt, also those queued from ComfyUI's editor: ComfyUI's numbers change, "
                          "so ComfyUI's own UI shows the new order.")
async def move_prompt(services: Services, params: dict) -> dict:
    return await services.queue_control.reorder(params["prompt_id"], params.get("priority"), params.get("position"),
                                                params.get("before"), params.get("after"))


@routes.post("/api/comfyui/free", summary="Unload models and free memory, as ComfyUI's /free does", body=FREE_BODY,
             response=FREED, errors=[_UNAVAILABLE], action="free_memory",
             description="`unload_models`: unload every model from VRAM; `free_memory`: also free ComfyUI's cached "
                         "memory. ComfyUI does it before its next prompt (at once when idle).")
async def free_memory(services: Services, params: dict) -> dict:
    unload, free = params.get("unload_models", False), params.get("free_memory", False)
    await services.backend.free(unload, free)
    return {"status": "requested", "unload_models": unload, "free_memory": free}
