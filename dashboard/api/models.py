"""The model inventory endpoints: /api/models and /api/models/types."""

from __future__ import annotations

from aiohttp import web

from ..services.container import Services
from ..services.downloads.jobs import PRIORITIES
from ..services.models import SORTS
from .context import services
from .routing import Routes
from .schemas import ANY_OBJECT, BOOLEAN, INTEGER, MODEL_SOURCE, NUMBER, STRING, TIMESTAMP, array, nullable, obj

routes = Routes("models")

#: The most paths one DELETE accepts.
MAX_DELETE = 1000

PROBLEM = obj(path=STRING, error=STRING)
MODEL = obj(path=STRING, type=STRING, size_gb=NUMBER, size_bytes=INTEGER, modified=TIMESTAMP,
            preset=nullable(STRING), source=nullable(MODEL_SOURCE), sha256=nullable(STRING),
            last_used=nullable(TIMESTAMP), use_count=INTEGER)
DUPLICATE_GROUP = obj(sha256=STRING, size_bytes=INTEGER, reclaimable_bytes=INTEGER,
                      files=array(obj(path=STRING, presets=array(STRING), keep=BOOLEAN)))
MODEL_LIST = obj(required=["models", "total", "total_size_gb", "total_size_bytes", "offset", "limit", "problems"],
                 models=array(MODEL), total=INTEGER, total_size_gb=NUMBER, total_size_bytes=INTEGER,
                 offset=INTEGER, limit=INTEGER, problems=array(PROBLEM), groups=array(DUPLICATE_GROUP),
                 reclaimable_bytes=INTEGER)
MODEL_TYPES = obj(types=array(obj(id=STRING, name=STRING, count=INTEGER, size_gb=NUMBER, size_bytes=INTEGER)))
DELETE_BODY = obj(
    required=["paths"], additional=False,
    paths={"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 4096},
           "minItems": 1, "maxItems": MAX_DELETE},
    force={"type": "boolean", "default": False},
)
DELETE_ERROR = obj(path=STRING, code={"enum": ["MODEL_NOT_FOUND", "INVALID_REQUEST", "MODEL_IN_USE", "FORBIDDEN",
                                               "INTERNAL_ERROR"]}, message=STRING)
DELETE_RESULT = obj(deleted=INTEGER, space_freed_gb=NUMBER, space_freed_bytes=INTEGER, errors=array(DELETE_ERROR))


@routes.get("/api/models", summary="List installed models", response=MODEL_LIST, query={
    "type": {"type": "string", "minLength": 1, "maxLength": 100},
    "search": {"type": "string", "maxLength": 200},
    "sort": {"type": "string", "enum": list(SORTS), "default": "path"},
    "order": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000},
    "offset": {"type": "integer", "minimum": 0, "default": 0},
    "duplicates": {"type": "boolean", "default": False},
    "unused_days": {"type": "integer", "minimum": 0, "maximum": 100_000},
}, description="Every model file (ComfyUI's model extensions and .gguf) in every model folder; downloads in "
               "progress (`.part`) never appear. `type` takes a folder type (legacy names such as `unet` are "
               "mapped); an unknown one is a 400 that lists the known types. `search` matches every word, "
               "case-insensitively, in the path below the type folder (subfolders and file name). `sort` by "
               "`path` (default), `name` (file name), `size`, `modified` or `last_used` (the last prompt that "
               "used it), in `order`. `duplicates=true`: only files whose sha256 another file has, group by "
               "group with the copy a cleanup keeps first, and the `groups` with the space a cleanup frees "
               "(`reclaimable_bytes`); `unused_days=N`: only files no prompt used and nothing changed in N days. "
               "Each model has its `sha256` once the library scan hashed it, `last_used` and `use_count`. `total` and "
               "`total_size_gb` count every match, not only this page. `preset` is the first installed preset "
               "(by id) that has the file; `source` where the dashboard downloaded it from (null when it did not, "
               "or does not know). `problems` lists folders or files that could not be read.")
async def list_models(request: web.Request, params: dict) -> web.Response:
    body = await services(request).models.list(
        folder_type=params.get("type"), search=params.get("search"), sort=params.get("sort", "path"),
        order=params.get("order", "asc"), limit=params.get("limit", 1000), offset=params.get("offset", 0),
        duplicates=params.get("duplicates", False), unused_days=params.get("unused_days"))
    return web.json_response(body)


@routes.get("/api/models/types", summary="Model folder types with their model counts", response=MODEL_TYPES,
            description="Every folder type the dashboard (or ComfyUI) knows, empty ones included.")
async def model_types(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).models.types())


VERIFY_BODY = {**obj(required=[], additional=False,
                     paths={"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 1000},
                            "minItems": 1, "maxItems": MAX_DELETE},
                     preset_id={"type": "string", "minLength": 1, "maxLength": 200}),
               "minProperties": 1}
VERIFY_RESULT = obj(files=array(obj(path=STRING, status={"enum": ["ok", "damaged", "unverified"]}, sha256=STRING,
                                    expected_sha256=nullable(STRING))),
                    ok=INTEGER, damaged=INTEGER, unverified=INTEGER)


@routes.post("/api/models/verify", summary="Hash model files again and compare them with what was verified",
             body=VERIFY_BODY, response=VERIFY_RESULT, errors=["MODEL_NOT_FOUND", "PRESET_NOT_FOUND"],
             description="`paths` (model-folder paths) or `preset_id` (its files on disk). Each file is read "
                         "and hashed (sha256) off the event loop: `ok` (its record is renewed), `damaged` (not "
                         "the bytes that were verified: installing its preset fetches it again) or "
                         "`unverified` (the dashboard never verified it).")
async def verify_models(request: web.Request, params: dict) -> web.Response:
    return web.json_response(await services(request).downloads.verify(params.get("paths"), params.get("preset_id")))


@routes.delete("/api/models", summary="Delete model files", body=DELETE_BODY, response=DELETE_RESULT,
               description=f"Deletes each path (`<type>/<relative path>`, as listed; at most {MAX_DELETE}). "
                           "A path that is not deleted gets one entry in `errors`: `MODEL_NOT_FOUND`, "
                           "`INVALID_REQUEST` (`..`, absolute, a folder, not a model file, or a symlink to "
                           "outside the model folders: nothing outside them is ever touched), `MODEL_IN_USE` "
                           "(a queued or running prompt names it; `force: true` deletes it anyway) or "
                           "`FORBIDDEN` (the file system refused). A symlink is removed, never its target.")
async def delete_models(request: web.Request, params: dict) -> web.Response:
    body = await services(request).models.delete(params["paths"], force=params.get("force", False))
    return web.json_response(body)


DOWNLOAD_BODY = obj(
    required=["url", "type"], additional=False,
    url={"type": "string", "minLength": 1, "maxLength": 4096},
    type={"type": "string", "minLength": 1, "maxLength": 100},
    filename={"type": "string", "minLength": 1, "maxLength": 255},
    subfolder={"type": "string", "maxLength": 1000},
    sha256={"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
    priority={"type": "string", "enum": list(PRIORITIES)},
    force=BOOLEAN,
)
DOWNLOAD_ANSWER = obj(required=["download_id", "path", "status"], download_id=STRING, path=STRING,
                      status={"enum": ["queued", "downloading", "paused", "completed"]},
                      source=nullable(MODEL_SOURCE), estimated_time_seconds=nullable(INTEGER), total_size_gb=NUMBER)
DRY_RUN_ANSWER = obj(required=["path", "size_bytes", "size_gb", "source", "exists"], path=STRING,
                     size_bytes=INTEGER, size_gb=NUMBER, source=MODEL_SOURCE, exists=BOOLEAN,
                     license=nullable(ANY_OBJECT))


@routes.post("/api/models/download", summary="Download one model from a URL, in the background", status=202,
             body=DOWNLOAD_BODY, response=DOWNLOAD_ANSWER,
             errors=["MODEL_EXISTS", "DOWNLOAD_FAILED", "INSUFFICIENT_STORAGE"], action="download_model",
             description="`url`: a Hugging Face file (`.../resolve/<revision>/<path>` or `/blob/`), a Civitai "
                         "model (`/api/download/models/<version>`, `/models/<id>?modelVersionId=<version>`, or "
                         "an AIR URN `urn:air:<ecosystem>:<type>:civitai:<id>@<version>`), or an https URL on a "
                         "host listed in `DASHBOARD_DOWNLOAD_HOSTS`; anything else is a 400 naming `url`. The "
                         "file goes to `<type>/<subfolder/>filename` (`path` in the answer, as the model list "
                         "writes paths); `filename` defaults to the source's name and must have a model "
                         "extension. Verified against `sha256`, else the source's own hash (Civitai's SHA256, "
                         "the Hub's); resumable, listed in `GET /api/downloads` with `preset_id` null. A file "
                         "already at the path is 409 `MODEL_EXISTS` unless `force` (then it is replaced once "
                         "the new one is verified). A source that refuses (gated, login required, early "
                         "access) is 502 `DOWNLOAD_FAILED` with `details.reason` and `details.token`. Nothing "
                         "is queued when the request is refused; `POST /api/models/download/check` answers "
                         "what this would do without doing it.")
async def download_model(services: Services, params: dict) -> dict:
    return await services.downloads.download_url(
        params["url"], params["type"], filename=params.get("filename"), subfolder=params.get("subfolder"),
        sha256=params.get("sha256"), priority=params.get("priority", "normal"), force=params.get("force", False))


@routes.post("/api/models/download/check", summary="What downloading a model from a URL would do, without doing it",
             body=DOWNLOAD_BODY, response=DRY_RUN_ANSWER,
             errors=["MODEL_EXISTS", "DOWNLOAD_FAILED", "INSUFFICIENT_STORAGE"], action="check_model_download",
             description="The same checks as `POST /api/models/download`, and the source asked once as it "
                         "would be, but nothing is queued or written: `path`, `size_bytes`, `source`, and "
                         "`exists` (a file is at the path, which only `force` allows), or the same refusals.")
async def check_model_download(services: Services, params: dict) -> dict:
    return await services.downloads.download_url(
        params["url"], params["type"], filename=params.get("filename"), subfolder=params.get("subfolder"),
        sha256=params.get("sha256"), force=params.get("force", False), dry_run=True)

