"""Thin HTTP handlers, one module per resource: parse and validate input, call a service, shape JSON."""

from __future__ import annotations

from . import comfyui, health, openapi, presets, system
from .routing import Routes

#: Every route table the app serves, in the order the OpenAPI document lists them.
TABLES: list[Routes] = [health.routes, system.routes, presets.routes, comfyui.routes, openapi.routes]
