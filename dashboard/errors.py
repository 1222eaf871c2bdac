"""The dashboard's errors: one class per error code, grouped so a caller catches at the precision it needs.

Every error a client sees has one JSON shape, on HTTP and on the WebSocket alike:

    {"error": {"code": "PRESET_NOT_FOUND", "message": "...", "details": {...}}}

`ErrorCode` lists the codes, each with its one HTTP status. Each concrete class has a code
(`PresetNotFound` -> PRESET_NOT_FOUND); families group them (`NotFound` catches every 404, `Conflict`
every 409, `DownloadFailed` every failed download). A finer kind of the same code is a subclass
with a `reason` (`GatedModel` is a DOWNLOAD_FAILED whose details say `"reason": "gated"`), so a
client can tell them apart and Python code catches the class instead of comparing strings.

No web framework here: services raise these, and `api.errors` renders them.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, ClassVar

log = logging.getLogger("dashboard")


class ErrorCode(StrEnum):
    """Every error code the API answers with; `.status` is its HTTP status."""

    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_WORKFLOW = "INVALID_WORKFLOW"
    UNSUPPORTED_API_VERSION = "UNSUPPORTED_API_VERSION"
    UNAUTHORIZED = "UNAUTHORIZED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    PRESET_NOT_FOUND = "PRESET_NOT_FOUND"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    DOWNLOAD_NOT_FOUND = "DOWNLOAD_NOT_FOUND"
    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"
    PROMPT_NOT_FOUND = "PROMPT_NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PRESET_ALREADY_INSTALLED = "PRESET_ALREADY_INSTALLED"
    DOWNLOAD_CONFLICT = "DOWNLOAD_CONFLICT"
    MODEL_IN_USE = "MODEL_IN_USE"
    PRESET_UNSUPPORTED = "PRESET_UNSUPPORTED"
    MODEL_EXISTS = "MODEL_EXISTS"
    PROMPT_NOT_PENDING = "PROMPT_NOT_PENDING"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    QUEUE_FULL = "QUEUE_FULL"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    DOWNLOAD_FAILED = "DOWNLOAD_FAILED"
    COMFYUI_UNAVAILABLE = "COMFYUI_UNAVAILABLE"
    DASHBOARD_UNAVAILABLE = "DASHBOARD_UNAVAILABLE"
    INSUFFICIENT_STORAGE = "INSUFFICIENT_STORAGE"

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS = {
    ErrorCode.INVALID_REQUEST: 400, ErrorCode.INVALID_WORKFLOW: 400, ErrorCode.UNSUPPORTED_API_VERSION: 400,
    ErrorCode.UNAUTHORIZED: 401, ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404, ErrorCode.PRESET_NOT_FOUND: 404, ErrorCode.MODEL_NOT_FOUND: 404,
    ErrorCode.DOWNLOAD_NOT_FOUND: 404, ErrorCode.WORKFLOW_NOT_FOUND: 404, ErrorCode.PROMPT_NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.PRESET_ALREADY_INSTALLED: 409, ErrorCode.DOWNLOAD_CONFLICT: 409, ErrorCode.MODEL_IN_USE: 409,
    ErrorCode.PRESET_UNSUPPORTED: 409, ErrorCode.MODEL_EXISTS: 409, ErrorCode.PROMPT_NOT_PENDING: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.RATE_LIMIT_EXCEEDED: 429, ErrorCode.QUEUE_FULL: 429,
    ErrorCode.INTERNAL_ERROR: 500, ErrorCode.DOWNLOAD_FAILED: 502,
    ErrorCode.COMFYUI_UNAVAILABLE: 503, ErrorCode.DASHBOARD_UNAVAILABLE: 503,
    ErrorCode.INSUFFICIENT_STORAGE: 507,
}


class DashboardError(Exception):
    """An error a client can act on: a code (hence a status), a message and details.

    Raise a concrete subclass; a family (`NotFound`, `Conflict`, ...) without a code of its own
    cannot be raised. `headers` go on the HTTP answer (e.g. `Retry-After`).
    """

    code: ClassVar[ErrorCode | None] = None
    #: The finer kind within the code, sent as `details["reason"]`.
    reason: ClassVar[str | None] = None
    _by_code: ClassVar[dict[ErrorCode, type[DashboardError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.code is not None and cls.reason is None and "code" in cls.__dict__:
            DashboardError._by_code.setdefault(cls.code, cls)

    def __init__(self, message: str, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        if self.code is None:
            raise TypeError(f"{type(self).__name__} is a family of errors; raise one of its kinds")
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})
        if self.reason is not None:
            self.details.setdefault("reason", self.reason)
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.code.status

    def to_dict(self) -> dict[str, Any]:
        """The error as the JSON body every error answer carries."""
        return {"error": {"code": str(self.code), "message": self.message, "details": self.details}}

    @staticmethod
    def of(code: ErrorCode | str, message: str, details: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> DashboardError:
        """The error of class `code` names (for codes that come from elsewhere: a status, a peer)."""
        return DashboardError._by_code[ErrorCode(code)](message, details, headers)


def internal_error(exc: BaseException, doing: str) -> DashboardError:
    """What a client sees of any exception: a DashboardError as it is, anything else logged with its
    traceback and answered as INTERNAL_ERROR (no traceback ever reaches a client)."""
    if isinstance(exc, DashboardError):
        return exc
    log.error("Unhandled error in %s", doing, exc_info=exc)
    return InternalError("Internal server error")


# ---- 400 ----
class InvalidRequest(DashboardError):
    """The request is malformed or names something it may not; `details.field` names the culprit."""

    code = ErrorCode.INVALID_REQUEST


class InvalidWorkflow(DashboardError):
    code = ErrorCode.INVALID_WORKFLOW


class UnsupportedApiVersion(DashboardError):
    code = ErrorCode.UNSUPPORTED_API_VERSION


def invalid(message: str, **details: Any) -> InvalidRequest:
    """An InvalidRequest with its details as keywords (`invalid("...", field="type")`)."""
    return InvalidRequest(message, details)


# ---- 401, 403 ----
class Unauthorized(DashboardError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(DashboardError):
    code = ErrorCode.FORBIDDEN


# ---- 404 ----
class NotFound(DashboardError):
    """Every 404: no such endpoint, or no such preset, model, download, workflow or prompt."""

    code = ErrorCode.NOT_FOUND


class PresetNotFound(NotFound):
    code = ErrorCode.PRESET_NOT_FOUND


class ModelNotFound(NotFound):
    code = ErrorCode.MODEL_NOT_FOUND


class DownloadNotFound(NotFound):
    code = ErrorCode.DOWNLOAD_NOT_FOUND


class WorkflowNotFound(NotFound):
    code = ErrorCode.WORKFLOW_NOT_FOUND


class PromptNotFound(NotFound):
    code = ErrorCode.PROMPT_NOT_FOUND


class MethodNotAllowed(DashboardError):
    code = ErrorCode.METHOD_NOT_ALLOWED


# ---- 409 ----
class Conflict(DashboardError):
    """Every 409: the request is sound but the state of things refuses it."""


class PresetAlreadyInstalled(Conflict):
    code = ErrorCode.PRESET_ALREADY_INSTALLED


class DownloadConflict(Conflict):
    code = ErrorCode.DOWNLOAD_CONFLICT


class ModelInUse(Conflict):
    code = ErrorCode.MODEL_IN_USE


class PresetUnsupported(Conflict):
    code = ErrorCode.PRESET_UNSUPPORTED


class ModelExists(Conflict):
    """A file is already at the path a download would write (unless `force`)."""

    code = ErrorCode.MODEL_EXISTS


class PromptNotPending(Conflict):
    """A prompt that is running (or already ran) cannot be held or moved."""

    code = ErrorCode.PROMPT_NOT_PENDING


# ---- 413, 429 ----
class PayloadTooLarge(DashboardError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class TooManyRequests(DashboardError):
    """Every 429: come back later (`Retry-After` when known)."""


class RateLimitExceeded(TooManyRequests):
    code = ErrorCode.RATE_LIMIT_EXCEEDED


class QueueFull(TooManyRequests):
    code = ErrorCode.QUEUE_FULL


# ---- 5xx ----
class InternalError(DashboardError):
    code = ErrorCode.INTERNAL_ERROR


class Unavailable(DashboardError):
    """Every 503: ComfyUI, or the dashboard itself, cannot serve this now."""


class ComfyUIUnavailable(Unavailable):
    code = ErrorCode.COMFYUI_UNAVAILABLE


class DashboardUnavailable(Unavailable):
    code = ErrorCode.DASHBOARD_UNAVAILABLE


class InsufficientStorage(DashboardError):
    code = ErrorCode.INSUFFICIENT_STORAGE


# ---- 502: a download that failed, by kind ----
class DownloadFailed(DashboardError):
    """A file could not be fetched or verified; subclasses say why (`details.reason`)."""

    code = ErrorCode.DOWNLOAD_FAILED


class AccessRefused(DownloadFailed):
    """The host refused this client (401/403): a token is missing or not accepted."""

    reason = "unauthorized"


class TokenRefused(AccessRefused):
    """A token was sent and refused."""

    reason = "token_refused"


class EarlyAccess(AccessRefused):
    """The file is in early (paid) access: only accounts that bought it may download it yet."""

    reason = "early_access"


class GatedModel(AccessRefused):
    """The model's licence must be accepted on its page first."""

    reason = "gated"


class RemoteNotFound(DownloadFailed):
    """The file does not exist at its source."""

    reason = "file_not_found"


class RevisionNotFound(RemoteNotFound):
    reason = "revision_not_found"


class RepositoryNotFound(RemoteNotFound):
    reason = "repository_not_found"


class HttpFailure(DownloadFailed):
    """The source answered with an error status nothing here can fix."""

    reason = "http_error"


class TooManyRedirects(HttpFailure):
    reason = "too_many_redirects"


class NetworkFailure(DownloadFailed):
    """The network kept failing after every retry."""

    reason = "network"


class Offline(DownloadFailed):
    """HF_HUB_OFFLINE forbids fetching."""

    reason = "offline"


class HashMismatch(DownloadFailed):
    """The bytes arrived but are not the file the source vouches for."""

    reason = "hash_mismatch"


class WriteFailure(DownloadFailed):
    """The file could not be written."""

    reason = "write_error"


class OutsideModelFolders(DownloadFailed):
    """The file would be written outside every model folder."""

    reason = "outside_model_folders"
