"""GET /api/system/status."""

from __future__ import annotations

from aiohttp import web

from .context import services
from .routing import Routes
from .schemas import INTEGER, NUMBER, STRING, array, nullable, obj

routes = Routes("system")

_SERVICE_STATE = {"type": "string", "enum": ["running", "unavailable", "unknown"]}
_N = nullable(NUMBER)

GPU = obj(
    index=INTEGER, name=nullable(STRING), uuid=nullable(STRING), pci_bus_id=nullable(STRING),
    utilization_percent=_N, memory_used_gb=_N, memory_total_gb=_N, memory_percent=_N, temperature_c=_N,
    power_w=_N, power_limit_w=_N, visible_to_comfyui={"type": "boolean"},
)
DISK = obj(path=STRING, used_gb=NUMBER, total_gb=NUMBER, available_gb=NUMBER, usage_percent=NUMBER)
SYSTEM_STATUS = obj(
    status={"type": "string", "enum": ["running"]},
    uptime=INTEGER,
    services=obj(dashboard=_SERVICE_STATE, comfyui=_SERVICE_STATE, preset_manager=_SERVICE_STATE),
    resources=obj(cpu_percent=_N, memory_percent=_N, gpu_percent=_N, disk_used_gb=_N, disk_total_gb=_N),
    memory=nullable(obj(used_gb=NUMBER, total_gb=NUMBER, available_gb=NUMBER)),
    disk=nullable(DISK),
    gpus=array(GPU),
    sampled_at=_N,
)


@routes.get("/api/system/status", summary="CPU, memory, GPU and disk, from the last background sample",
            response=SYSTEM_STATUS,
            description="`gpu_percent` is null when there is no NVIDIA GPU or driver; `gpus` lists each one.")
async def system_status(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).system.status())


STORAGE = obj(
    workspace=nullable(DISK),
    models=obj(count=INTEGER, total_size_gb=NUMBER, total_size_bytes=INTEGER,
               by_type={"type": "object", "additionalProperties": INTEGER}),
)


@routes.get("/api/system/storage", summary="The models volume, and what the models take on it", response=STORAGE,
            description="`workspace` is the volume holding the models folder, read now (null if it cannot be "
                        "read); `by_type` counts the models of every folder type, empty ones included.")
async def system_storage(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).models.storage())
