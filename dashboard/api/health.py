"""GET /health."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import metadata

from aiohttp import web

from .. import __version__
from .routing import Routes
from .schemas import STRING, TIMESTAMP, obj

routes = Routes("health")

HEALTH = obj(status={"type": "string", "enum": ["healthy"]}, version=STRING, timestamp=TIMESTAMP)


def _package_version() -> str:
    """The installed distribution's version, else the source tree's (read once: it scans sys.path)."""
    try:
        return metadata.version("comfyui-dashboard")
    except metadata.PackageNotFoundError:
        return __version__


VERSION = _package_version()


@routes.get("/health", summary="Dashboard health", response=HEALTH, public=True, rate_limited=False,
            errors=["DASHBOARD_UNAVAILABLE"],
            description="Inside ComfyUI, a dashboard that failed to start (a bad setting, an unusable data folder, "
                        "a missing package) answers this and every other route under /dashboard with 503 "
                        "`DASHBOARD_UNAVAILABLE`, the reason in `details.reason`; ComfyUI itself keeps working.")
async def health(request: web.Request, params: dict) -> web.Response:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return web.json_response({
        "status": "healthy",
        "version": VERSION,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
    })
