"""Middlewares that guard the API: auth and origins, rate limits, CORS, API versioning."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def request_key(name: str, kind: type) -> Any:
    """A typed key of a request's storage (`web.RequestKey`); just its name on an aiohttp too old to
    have those (a ComfyUI may bring one: it asks only for aiohttp 3.11.8)."""
    make = getattr(web, "RequestKey", None)
    return name if make is None else make(name, kind)
