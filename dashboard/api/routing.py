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

An operation that is also a WebSocket action names it, and is declared on its service call
instead of a request handler:

    @routes.post("/api/presets/{preset_id}/install", summary="...", status=202, body=INSTALL_REQUEST,
                 action="install_preset")
    async def install_preset(services, params): return await services.downloads.install(...)

Over HTTP it answers the call's result as JSON with the operation's status; on the socket the
action's `data` is checked against `Operation.data_schema` (the same path parameters, query
parameters and body fields as one object) and runs the same call.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from jsonschema import Draft202012Validator

from ..errors import invalid
from .context import services

if TYPE_CHECKING:
    from ..services.container import Services

Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]
#: What an operation with an action is declared on: the service call, `(services, params) -> data`.
ServiceCall = Callable[["Services", dict[str, Any]], Awaitable[Any]]

_PATH_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")
#: The schema of a path parameter: a non-empty string (one segment of the URL).
PATH_PARAM_SCHEMA = {"type": "string", "minLength": 1}
#: Body schema keywords `data_schema` sets itself; any other (e.g. minProperties) carries over.
_OBJECT_KEYWORDS = ("type", "properties", "required", "additionalProperties")

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
    #: What a dry run (`?dry_run=true`) answers, with 200, when the operation takes one.
    dry_run_response: dict | None = None
    errors: tuple[str, ...] = ()
    description: str = ""
    content_type: str | tuple[str, ...] = "application/json"
    public: bool = False
    any_role: bool = False
    rate_limited: bool = True
    #: The WebSocket action that runs this operation (`call`) too; None for HTTP only.
    action: str | None = None
    call: ServiceCall | None = None

    @property
    def openapi_path(self) -> str:
        """The path with aiohttp's `{name:regex}` written as OpenAPI's `{name}`."""
        return _PATH_PARAM.sub(r"{\1}", self.path)

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    def data_schema(self) -> dict[str, Any]:
        """This operation's whole input as one JSON object (a WebSocket action's `data`): its path
        parameters (required non-empty strings), its query parameters and its body's fields, with
        their required lists, and nothing else."""
        body = self.body or {}
        query = {name: without_extensions(schema) for name, schema in self.query.items()}
        groups = [dict.fromkeys(self.path_params, PATH_PARAM_SCHEMA), query, body.get("properties", {})]
        names = [name for group in groups for name in group]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.method} {self.path}: one name is used twice among path, query and body parameters")
        schema = {k: v for k, v in body.items() if k not in _OBJECT_KEYWORDS}
        if "minProperties" in schema:  # the path parameters are always there besides the body's fields
            schema["minProperties"] += len(self.path_params)
        required = [*self.path_params, *(n for n, s in self.query.items() if s.get("x-required")),
                    *body.get("required", [])]
        return {**schema, "type": "object", "properties": {k: v for group in groups for k, v in group.items()},
                "required": required, "additionalProperties": False}


def without_extensions(schema: dict) -> dict:
    """`schema` less its `x-` keywords (such as a query parameter's `x-required`)."""
    return {k: v for k, v in schema.items() if not k.startswith("x-")}


class Routes:
    """A table of operations for one resource (one OpenAPI tag)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def route(self, method: str, path: str, *, summary: str, action: str | None = None,
              **spec: Any) -> Callable[[Any], Any]:
        """Declare an operation on a request handler `(request, params) -> response`, or, with
        `action`, on a service call `(services, params) -> data`; see the module docstring."""

        def decorate(function: Any) -> Any:
            op = Operation(method, path, function, summary, self.tag, action=action, **spec)
            if action is not None:
                op.call = function
            handler = _answering(function, op.status) if action is not None else function
            op.handler = _validating(op, handler)
            op.handler.public = op.public  # read by the auth guard
            op.handler.any_role = op.any_role
            op.handler.rate_limited = op.rate_limited  # read by the rate limiter
            self.operations.append(op)
            return function

        return decorate

    def get(self, path: str, **spec: Any):
        return self.route("GET", path, **spec)

    def post(self, path: str, **spec: Any):
        return self.route("POST", path, **spec)

    def put(self, path: str, **spec: Any):
        return self.route("PUT", path, **spec)

    def delete(self, path: str, **spec: Any):
        return self.route("DELETE", path, **spec)

    def patch(self, path: str, **spec: Any):
        return self.route("PATCH", path, **spec)

    def register(self, app: web.Application) -> None:
        """Add every operation to the app's router."""
        for op in self.operations:
            app.router.add_route(op.method, op.path, op.handler)


def _answering(call: ServiceCall, status: int) -> Handler:
    """The HTTP handler of a service call: its result as JSON, with the operation's status; a dry
    run (`dry_run` true in the parameters) starts nothing and answers 200."""

    @functools.wraps(call)
    async def handle(request: web.Request, params: dict[str, Any]) -> web.Response:
        answer = await call(services(request), params)
        return web.json_response(answer, status=200 if params.get("dry_run") else status)

    return handle


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
