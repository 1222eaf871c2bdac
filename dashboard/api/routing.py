"""Route tables that carry their own OpenAPI description and input validation.

Each API module declares its routes with a `Routes` table:

    routes = Routes("presets")

    @routes.get("/api/presets/{preset_id}", summary="One preset", response=PRESET,
                errors=["PRESET_NOT_FOUND"])
    async def get_preset(request, params): ...

A handler gets `params`: the path parameters, the query parameters and the JSON body's fields,
already checked against the declared schemas (jsonschema), so a bad value is a 400
INVALID_REQUEST before the handler runs. The OpenAPI document is built from the same tables, so
the document and the router cannot drift apart.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from ..errors import invalid

Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]

_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")

#: Deepest nesting of arrays and objects that a JSON body or WebSocket message may have.
MAX_JSON_DEPTH = 64
#: A JSON string (an unterminated one runs to the end): skipped by the depth scan.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


@dataclass
class Operation:
    """One method on one path, with what the OpenAPI document says about it."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    query: dict[str, dict] = field(default_factory=dict)
    body: dict | None = None
    response: dict | None = None
    status: int = 200
    errors: tuple[str, ...] = ()
    description: str = ""
    content_type: str | tuple[str, ...] = "application/json"
    public: bool = False
    any_role: bool = False
    rate_limited: bool = True

    @property
    def openapi_path(self) -> str:
        """The path with aiohttp's `{name:regex}` written as OpenAPI's `{name}`."""
        return _PATH_PARAM.sub(r"{\1}", self.path)

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


class Routes:
    """A table of operations for one resource (one OpenAPI tag)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def route(self, method: str, path: str, *, summary: str, **spec: Any) -> Callable[[Handler], Handler]:
        """Declare an operation; see the module docstring."""

        def decorate(handler: Handler) -> Handler:
            op = Operation(method, path, handler, summary, self.tag, **spec)
            op.handler = _validating(op, handler)
            op.handler.public = op.public  # read by the auth guard
            op.handler.any_role = op.any_role
            op.handler.rate_limited = op.rate_limited  # read by the rate limiter
            self.operations.append(op)
            return handler

        return decorate

    def get(self, path: str, **spec: Any):
        return self.route("GET", path, **spec)

    def post(self, path: str, **spec: Any):
        return self.route("POST", path, **spec)

    def put(self, path: str, **spec: Any):
        return self.route("PUT", path, **spec)

    def delete(self, path: str, **spec: Any):
        return self.route("DELETE", path, **spec)

    def register(self, app: web.Application) -> None:
        """Add every operation to the app's router."""
        for op in self.operations:
            app.router.add_route(op.method, op.path, op.handler)


def _validating(op: Operation, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    query_validator = Draft202012Validator(
        {"type": "object", "properties": op.query, "required": [n for n, s in op.query.items() if s.get("x-required")]}
    ) if op.query else None
    body_validator = Draft202012Validator(op.body) if op.body else None

    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        params: dict[str, Any] = dict(request.match_info)
        if query_validator is not None:
            query = {name: _coerce(name, request.query[name], op.query[name])
                     for name in op.query if name in request.query}
            _check(query_validator, query, "query")
            params.update(query)
        if body_validator is not None:
            body = await _read_json(request)
            _check(body_validator, body, "body")
            params.update(body)
        return await handler(request, params)

    return handle


def load_json(raw: str | bytes) -> Any:
    """Parse JSON text as json.loads does, refusing (ValueError) nesting deeper than MAX_JSON_DEPTH.

    The depth is checked before parsing, by one linear scan of the brackets outside strings, so
    neither the parser nor a schema validator ever recurses deeply.
    """
    text = raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, bytes) else raw
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        depth = 0
        for byte in _STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS):
            depth += 1 if byte in b"[{" else -1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text)


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return load_json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"Request body is not valid JSON: {exc}"[:500], reason=str(exc)[:300]) from None


def _coerce(name: str, text: str, schema: dict) -> Any:
    kind = schema.get("type")
    if kind == "boolean":
        if text.lower() == "true":
            return True
        if text.lower() == "false":
            return False
        raise invalid(f"Query parameter {name!r} must be true or false", field=name, value=text)
    if kind in ("integer", "number"):
        try:
            return int(text) if kind == "integer" else float(text)
        except ValueError:
            raise invalid(f"Query parameter {name!r} must be a{'n integer' if kind == 'integer' else ' number'}",
                          field=name, value=text) from None
    return text


def _check(validator: Draft202012Validator, value: Any, where: str) -> None:
    error = next(iter(sorted(validator.iter_errors(value), key=lambda e: list(e.path))), None)
    if error is None:
        return
    location = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        location = ".".join(filter(None, [location, *missing]))
    message = f"Invalid {where}" + (f" field {location!r}" if location else "") + f": {error.message}"
    raise invalid(message[:500], field=location or None, reason=error.message[:300], location=where)
