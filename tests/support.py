"""What many test files share: a small workflow, a password, model files, JSON calls that check the status,
and waiting on a condition with a deadline (never a fixed sleep).

Fixtures live in conftest.py; the stand-ins (hub.py, comfyui_standin.py) and the server processes
(processes.py, dashboard_process.py, browser.py) have modules of their own.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import time
import urllib.request
from pathlib import Path

import pytest

PASSWORD = "correct horse battery staple"


def empty_image(prefix: str = "t") -> dict:
    """The smallest API-format workflow of ComfyUI's core nodes: a 64 px image, saved as `prefix`_NNNNN_.png."""
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 255}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


#: `empty_image()`, shared by every test that uses it: copy it before changing it.
EMPTY = empty_image()

#: For a test that uses the `module_client` fixture: it runs on the module's event loop, where that client lives.
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


def logged_faults(caplog) -> list[str]:
    """Log records at ERROR level or with a traceback: what a server fault leaves behind."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def put_model(folder: Path, path: str, size: int = 16, mtime: float | None = None) -> Path:
    """A file of `size` bytes at `folder`/`path` (folders made as needed), modified at `mtime` if given."""
    target = folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(target, (mtime, mtime))
    return target


async def call(client, method: str, url: str, status: int = 200, **kwargs):
    """`client.request(method, url, **kwargs)`, asserting the status; the JSON body (an aiohttp client or session)."""
    response = await client.request(method, url, **kwargs)
    assert response.status == status, await response.text()
    return await response.json()


def fetch_json(url: str, method: str = "GET", body: dict | None = None, status: int | None = None):
    """`call` for tests that are not async, with urllib: the JSON body (an error status raises HTTPError)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert status is None or response.status == status, (response.status, url)
        return json.load(response)


async def until(condition, timeout: float = 10, what: str = "condition", interval: float = 0.01):
    """Poll `condition()` (a function or a coroutine function) every `interval` seconds until it gives something
    truthy; that value. A deadline for a condition, not a sleep to synchronise on: past `timeout` it fails, naming
    `what`.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def wait_until(condition, timeout: float = 60, what: str = "condition"):
    """`until` for tests that are not async (it blocks the thread between polls)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
