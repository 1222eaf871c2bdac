"""A real browser for tests: Playwright for Python driving Debian's chromium, headless.

Never `playwright install` (it downloads a browser): CI installs chromium with apt-get. The tests
using these helpers are skipped, with the reason, when chromium or playwright is missing.
Screenshots go to `test-output/screenshots/` (gitignored).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import serving

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SCREENSHOTS = ROOT / "test-output" / "screenshots"


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "browser tests: Playwright for Python is not installed (pip install playwright)"
    if not os.path.exists(CHROMIUM):
        return f"browser tests: {CHROMIUM} is missing (apt-get install -y chromium)"
    return None


requires_browser = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@contextlib.contextmanager
def browser(width: int = 1280, height: int = 860) -> Iterator:
    """A fresh chromium profile; yields the Playwright BrowserContext."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                viewport={"width": width, "height": height})
            context.set_default_timeout(20_000)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def watch_errors(page) -> list[str]:
    """Collect the page's uncaught exceptions (a test asserts the list stays empty)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def screenshot(page, name: str, full_page: bool = False, clip: dict | None = None) -> Path:
    """Save a PNG under test-output/screenshots/ and say where."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, clip=clip)
    print(f"screenshot: {path}")
    return path


@contextlib.contextmanager
def dashboard_process(port: int, workspace: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """`python -m dashboard` on 127.0.0.1:port, for tests that stop and start the server."""
    command = [sys.executable, "-m", "dashboard", "--host", "127.0.0.1", "--port", str(port),
               "--workspace", str(workspace)]
    with serving(command, cwd=ROOT, env={**os.environ, "DASHBOARD_OFFICIAL_TEMPLATES": "false", **(env or {})},
                 log_path=workspace.parent / f"dashboard-{port}.log", ready_url=f"http://127.0.0.1:{port}/health",
                 name="dashboard") as process:
        yield process
