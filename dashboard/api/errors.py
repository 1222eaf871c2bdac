"""Errors on the wire: the error middleware, and aiohttp's own HTTP errors in the dashboard's shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import DashboardError, ErrorCode, internal_error

_CODE_BY_HTTP_STATUS = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    429: ErrorCode.RATE_LIMIT_EXCEEDED,
}


def error_response(error: DashboardError) -> web.Response:
    """Render an error as its JSON answer."""
    return web.json_response(error.to_dict(), status=error.status, headers=error.headers)


def from_http_exception(exc: web.HTTPException) -> DashboardError:
    """Map one of aiohttp's own HTTP errors (unknown route, wrong method, body too big) to ours."""
    fallback = ErrorCode.INTERNAL_ERROR if exc.status >= 500 else ErrorCode.INVALID_REQUEST
    code = _CODE_BY_HTTP_STATUS.get(exc.status, fallback)
    details: dict[str, Any] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        details["allowed_methods"] = sorted(exc.allowed_methods)
        message = f"Method {exc.method} is not allowed here"
    elif exc.status == 404:
        message = "No such endpoint"
    else:
        message = exc.reason
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return DashboardError.of(code, message, details, headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Turn every failure of a handler into the one error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(from_http_exception(exc))
    except Exception as exc:
        return error_response(internal_error(exc, f"{request.method} {request.path}"))

