"""JSON schemas shared by the route tables and the OpenAPI document."""

from __future__ import annotations

from ..errors import ErrorCode


def obj(required: list[str] | None = None, additional: bool = True, **properties: dict) -> dict:
    """An object schema; every named property is listed as required unless `required` says otherwise."""
    schema: dict = {"type": "object", "properties": properties,
                    "required": list(properties) if required is None else required}
    if not additional:
        schema["additionalProperties"] = False
    return schema


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}
TIMESTAMP = {"type": "string", "format": "date-time"}
ANY_OBJECT = {"type": "object"}
#: Where a downloaded model came from (its record says): `kind` and, as they apply, the URL, the
#: Hugging Face repo, file, revision and commit, or the Civitai model and version ids.
MODEL_SOURCE = obj(required=["kind"], kind={"enum": ["huggingface", "civitai", "url"]}, url=STRING, repo=STRING,
                   repo_file=STRING, revision=STRING, commit=STRING, model_id=INTEGER, version_id=INTEGER,
                   download_url=STRING)

ERROR = obj(
    error=obj(
        code={"type": "string", "enum": sorted(ErrorCode)},
        message=STRING,
        details=ANY_OBJECT,
    )
)

#: A plan before the first byte (GET /api/presets/{id}/plan, install-missing with dry_run).
VOLUME = obj(path=STRING, free_bytes=INTEGER, needed_bytes=INTEGER, fits=BOOLEAN)
ACCESS = obj(ok=BOOLEAN, hf_token=BOOLEAN, repos=array(obj(
    repo=STRING, status={"enum": ["granted", "needs_token", "token_refused", "not_found", "unknown"]},
    message=STRING, model_page=STRING)))
PLANNED_FILE = obj(required=["path", "size_bytes", "bytes_to_download"], path=STRING, size_bytes=INTEGER,
                   bytes_to_download=INTEGER, source=ANY_OBJECT)
PLAN = obj(files=array(PLANNED_FILE), dependencies=array(ANY_OBJECT), bytes_to_download=INTEGER,
           total_bytes=INTEGER, volumes=array(VOLUME), access=ACCESS, fits=BOOLEAN)
