"""The model library endpoints: /api/library (the hash scan) and, per model, info, preview,
duplicates cleanup and updates under /api/models."""

from __future__ import annotations

from aiohttp import web

from ..services.container import Services
from ..services.downloads.jobs import PRIORITIES
from .context import services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, MODEL_SOURCE, NUMBER, STRING, TIMESTAMP, array, nullable, obj

routes = Routes("library")

SCAN_STATUS = obj(status={"enum": ["scanning", "idle"]}, paused=BOOLEAN, files_total=INTEGER, files_hashed=INTEGER,
                  bytes_total=INTEGER, bytes_hashed=INTEGER)
_SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
_PATH = {"type": "string", "minLength": 1, "maxLength": 4096}
REMOVE_BODY = obj(required=[], additional=False, sha256={"type": "array", "items": _SHA256, "minItems": 1,
                                                         "maxItems": 10_000},
                  keep={"type": "object", "additionalProperties": _PATH, "maxProperties": 10_000},
                  force=BOOLEAN, dry_run=BOOLEAN)
REMOVED = obj(deleted=INTEGER, space_freed_bytes=INTEGER, would_delete=array(STRING), kept=array(STRING),
              errors=array(obj(path=STRING, code=STRING, message=STRING)))
HEADER = nullable(obj(format={"enum": ["safetensors", "gguf"]}, title=nullable(STRING),
                      architecture=nullable(STRING), base_model=nullable(STRING), metadata=ANY_OBJECT))
UPDATE = obj(path=STRING, kind={"enum": ["huggingface", "civitai"]}, preset_id=nullable(STRING), source=MODEL_SOURCE,
             current=ANY_OBJECT, latest=ANY_OBJECT)
MODEL_INFO = obj(
    path=STRING, type=STRING, size_bytes=INTEGER, modified=TIMESTAMP, sha256=nullable(STRING), hashed=BOOLEAN,
    presets=array(STRING), source=nullable(MODEL_SOURCE), license=nullable(obj(name=STRING, url=nullable(STRING))),
    metadata=HEADER, last_used=nullable(TIMESTAMP), use_count=INTEGER, duplicates=array(STRING),
    update=nullable(UPDATE), civitai=nullable(ANY_OBJECT),
)
UPDATES = obj(updates=array(UPDATE), checked_at=nullable(NUMBER))
UPDATE_BODY = obj(required=["paths"], additional=False, paths={"type": "array", "items": _PATH, "minItems": 1,
                                                               "maxItems": 1000},
                  priority={"type": "string", "enum": list(PRIORITIES)})
UPDATE_STARTED = obj(download_id=STRING, status=STRING, paths=array(STRING))


@routes.get("/api/library/status", summary="The library scan: files and bytes hashed", response=SCAN_STATUS,
            description="The background scan computes the sha256 of every model file once (a file is hashed "
                        "again only when its size, mtime or inode changes; files the dashboard downloaded reuse "
                        "their verified hash). `paused` while ComfyUI runs a prompt. Progress also comes as "
                        "`library_progress` events on the `downloads` channel.")
async def library_status(request: web.Request, params: dict) -> web.Response:
    return web.json_response(services(request).library.hashes.status())


@routes.post("/api/library/scan", summary="Start a library scan now", status=202, response=SCAN_STATUS,
             action="scan_library",
             description="The first scan starts a while after the dashboard, later ones when model files change; "
                         "this starts one at once (or another right after the running one).")
async def scan_library(services: Services, params: dict) -> dict:
    return services.library.hashes.scan()


@routes.post("/api/models/duplicates/remove", summary="Remove duplicate copies, keeping one of each",
             body=REMOVE_BODY, response=REMOVED, errors=["NOT_FOUND"], action="remove_duplicates",
             description="For each group of files with one sha256 (`sha256`: these groups; all by default) every "
                         "copy but one is deleted: the one named in `keep` (sha256 -> path), else the one "
                         "`GET /api/models?duplicates=true` marks `keep` (a copy a preset lists, else the one in "
                         "its type's first folder, else the shortest path). A copy a preset lists is never "
                         "deleted unless `force` (which also deletes files a queued prompt names). "
                         "`dry_run: true` answers what would be deleted and freed.")
async def remove_duplicates(services: Services, params: dict) -> dict:
    return await services.library.remove_duplicates(params.get("sha256"), params.get("keep"),
                                                    force=params.get("force", False),
                                                    dry_run=params.get("dry_run", False))


@routes.get("/api/models/updates", summary="Newer versions of downloaded models", response=UPDATES,
            query={"refresh": {"type": "boolean", "default": False}}, action="model_updates", any_role=True,
            description="Files the dashboard downloaded from a Hub branch whose file now has another etag, and "
                        "Civitai files whose model has a newer version. Sources are asked at most every few hours; "
                        "`refresh=true` asks now. Presets show `update_available` when one of their files has one.")
async def model_updates(services: Services, params: dict) -> dict:
    return await services.library.updates.list(refresh=params.get("refresh", False))


@routes.post("/api/models/update", summary="Download the newer version of models", status=202, body=UPDATE_BODY,
             response=UPDATE_STARTED, errors=["NOT_FOUND", "INSUFFICIENT_STORAGE"], action="update_models",
             description="One download of the newer file of each path, to the same path: its `.part` beside the "
                         "old file, verified against the hash the source announces, then renamed over it, so the "
                         "old file stays until the new one is whole (and stays if the download fails). A preset's "
                         "file stays its. `NOT_FOUND` for a path `GET /api/models/updates` does not list.")
async def update_models(services: Services, params: dict) -> dict:
    return await services.library.updates.update(params["paths"], params.get("priority", "normal"))


@routes.get("/api/models/{path:.+}/info", summary="One model: hash, owners, provenance, metadata, usage",
            response=MODEL_INFO, errors=["MODEL_NOT_FOUND"], action="model_info", any_role=True,
            description="`path` as the model list writes it. `sha256` once the scan hashed it; `presets` that list "
                        "it; `source` (the Hub repository and revision, Civitai model and version, or URL it was "
                        "downloaded from; null when unknown); `license` of its preset; `metadata` read from the "
                        "safetensors or GGUF header (title, architecture, base model, the header's own keys), "
                        "without loading weights; `last_used`/`use_count` from the prompts that ran; the paths of "
                        "its `duplicates`; its `update`; and with DASHBOARD_CIVITAI_LOOKUP=true, `civitai`: what "
                        "Civitai knows of the hash (`found: false` when nothing), with a `preview` image served "
                        "by the dashboard.")
async def model_info(services: Services, params: dict) -> dict:
    return await services.library.info(params["path"])


@routes.get("/api/models/{path:.+}/preview", summary="A model's preview image, saved from Civitai",
            errors=["NOT_FOUND"], content_type=("image/png", "image/jpeg", "image/webp", "image/gif"),
            description="Saved when Civitai's lookup found the model; `NOT_FOUND` otherwise.")
async def model_preview(request: web.Request, params: dict) -> web.StreamResponse:
    image = await services(request).library.preview(params["path"])
    return web.FileResponse(image, headers={"Cache-Control": "private, max-age=86400",
                                            "X-Content-Type-Options": "nosniff"})
