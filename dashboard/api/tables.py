"""Every route table the app serves."""

from __future__ import annotations

from . import (
    auth,
    comfyui,
    downloads,
    health,
    library,
    live,
    models,
    openapi,
    page,
    presets,
    queue,
    system,
    workflows,
)
from .routing import Routes

#: Every route table the app serves, in the order the OpenAPI document lists them.
TABLES: list[Routes] = [health.routes, system.routes, presets.routes, models.routes, library.routes,
                        downloads.routes,
                        comfyui.routes, queue.routes, workflows.routes, auth.routes, live.routes,
                        openapi.routes, page.routes]
