"""Errors as values: ApiError carries a code, and every error response has one JSON shape.

    {"error": {"code": "PRESET_NOT_FOUND", "message": "...", "details": {...}}}

Each code has exactly one HTTP status (`STATUS_BY_CODE`). Services raise ApiError (or a subclass);
the error middleware turns it, aiohttp's own HTTP errors and any unexpected exception into that
shape. No traceback ever reaches a client; unexpected exceptions are logged with theirs.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

log = logging.getLogger("dashboard")

#: Every error code the API answers with, and its HTTP status.
STATUS_BY_CODE: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "INVALID_WORKFLOW": 400,
    "UNSUPPORTED_API_VERSION": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "PRESET_NOT_FOUND": 404,
    "MODEL_NOT_FOUND": 404,
    "DOWNLOAD_NOT_FOUND": 404,
    "WORKFLOW_NOT_FOUND": 404,
    "PROMPT_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "PRESET_ALREADY_INSTALLED": 409,
    "DOWNLOAD_CONFLICT": 409,
    "MODEL_IN_USE": 409,
    "PRESET_UNSUPPORTED": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMIT_EXCEEDED": 429,
    "QUEUE_FULL": 429,
    "INTERNAL_ERROR": 500,
    "DOWNLOAD_FAILED": 502,
    "COMFYUI_UNAVAILABLE": 503,
    "DASHBOARD_UNAVAILABLE": 503,
    "INSUFFICIENT_STORAGE": 507,
}

_CODE_BY_HTTP_STATUS = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMIT_EXCEEDED",
}


class ApiError(Exception):
    """An error a client can act on. `code` must be a key of STATUS_BY_CODE."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        if code not in STATUS_BY_CODE:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return STATUS_BY_CODE[self.code]

    def to_dict(self) -> dict[str, Any]:
        """The error as the JSON body every error response carries."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid(message: str, **details: Any) -> ApiError:
    """Shorthand for a 400 INVALID_REQUEST."""
    return ApiError("INVALID_REQUEST", message, details)


def error_response(error: ApiError) -> web.Response:
    """Render an ApiError as its JSON response."""
    return web.json_response(error.to_dict(), status=error.status, headers=error.headers)


def from_http_exception(exc: web.HTTPException) -> ApiError:
    """Map one of aiohttp's own HTTP errors (unknown route, wrong method, body too big) to an ApiError."""
    code = _CODE_BY_HTTP_STATUS.get(exc.status, "INTERNAL_ERROR" if exc.status >= 500 else "INVALID_REQUEST")
    details: dict[str, Any] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        details["allowed_methods"] = sorted(exc.allowed_methods)
        message = f"Method {exc.method} is not allowed here"
    elif exc.status == 404:
        message = "No such endpoint"
    else:
        message = exc.reason
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return ApiError(code, message, details, headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Turn every failure of a handler into the one error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(from_http_exception(exc))
    except Exception:
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return error_response(ApiError("INTERNAL_ERROR", "Internal server error"))
