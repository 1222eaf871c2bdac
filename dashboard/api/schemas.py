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
