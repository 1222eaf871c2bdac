"""GET /api/system/status, /api/system/history and /api/system/storage."""

from __future__ import annotations

from aiohttp import web

from .context import services
from .routing import Routes
from .schemas import BOOLEAN, INTEGER, NUMBER, STRING, array, nullable, obj

routes = Routes("system")

_SERVICE_STATE = {"type": "string", "enum": ["running", "unavailable", "unknown"]}
_N = nullable(NUMBER)

GPU_PROCESS = obj(pid=INTEGER, name=nullable(STRING), used_memory_bytes=nullable(INTEGER), comfyui=BOOLEAN)
GPU = obj(
    index=INTEGER, name=nullable(STRING), uuid=nullable(STRING), pci_bus_id=nullable(STRING),
    utilization_percent=_N, memory_used_gb=_N, memory_total_gb=_N, memory_percent=_N, temperature_c=_N,
    power_w=_N, power_limit_w=_N, vendor=nullable(STRING),
    source={"type": "string", "enum": ["nvml", "amdsmi", "sysfs", "comfyui"]},
    processes=nullable(array(GPU_PROCESS)), visible_to_comfyui=BOOLEAN, comfyui=BOOLEAN,
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
            description="`gpu_percent` is null when no GPU reading answers; `gpus` lists each GPU: NVIDIA's "
                        "through NVML, AMD's through amdsmi or sysfs (`source`), each reading null where the card "
                        "does not say. `comfyui` marks the device ComfyUI computes on (inside ComfyUI, from its own "
                        "memory functions; one no other source sees, such as Apple MPS, is its own entry with "
                        "`source: comfyui`). `processes`: who holds GPU memory, per process (NVML only; null where "
                        "it cannot say), `comfyui` marking ComfyUI's own process.")
async def system_status(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).system.status())


HISTORY_GPU = obj(index=INTEGER, utilization_percent=_N, memory_used_gb=_N, memory_total_gb=_N, memory_percent=_N,
                  temperature_c=_N, power_w=_N, comfyui=BOOLEAN)
HISTORY = obj(
    interval=NUMBER,
    samples=array(obj(timestamp=NUMBER, cpu_percent=_N, memory_percent=_N, memory_used_gb=_N, gpu_percent=_N,
                      disk_used_gb=_N, disk_total_gb=_N, gpus=array(HISTORY_GPU))),
)


@routes.get("/api/system/history", summary="The system samples of the last minutes, oldest first", response=HISTORY,
            query={"minutes": {"type": "integer", "minimum": 1, "maximum": 60, "default": 60}},
            description="Every background sample (one each `interval` seconds) of the last `minutes` (1 to 60, "
                        "default 60): the `resources` of GET /api/system/status with `memory_used_gb`, each GPU's "
                        "readings and a `timestamp` (Unix seconds). The dashboard keeps at most 3600 samples, so "
                        "with an interval under a second the history spans less than an hour.")
async def system_history(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).system.recent(params.get("minutes", 60)))


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
