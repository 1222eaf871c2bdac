"""A real browser for tests: Playwright for Python driving Debian's chromium, headless.

Never `playwright install` (it downloads a browser): CI installs chromium with apt-get. The tests
using these helpers are skipped, with the reason, when chromium or playwright is missing. A test takes
the `browser` fixture (conftest.py): `with browser(width, height) as context:` gives it a fresh
context of the one chromium the session starts (`Chromium`).
Screenshots go to `test-output/screenshots/` (gitignored).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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


class Chromium:
    """One headless chromium for the whole test session, driven by Playwright's sync API on a thread of its own.

    Every call of the sync API leaves its thread marked as running Playwright's event loop, and on such a thread
    pytest-asyncio (and asyncio.run) refuse to start a loop. So chromium, and the body of every test that uses
    the `browser` fixture (conftest.py runs it here, with `run`), stay on this one thread, and the main thread
    stays free for the async tests. Each test gets fresh browser contexts: no cookies, storage or cache of another.
    """

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        try:
            self.run(self._launch)
        except BaseException:
            self._thread.shutdown()
            raise

    def _launch(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        except BaseException:
            self._playwright.stop()
            raise

    def run(self, function, /, *args, **kwargs):
        """`function(*args, **kwargs)` on chromium's thread; its result, or its exception raised here."""
        return self._thread.submit(function, *args, **kwargs).result()

    @contextlib.contextmanager
    def context(self, width: int = 1280, height: int = 860) -> Iterator:
        """A fresh BrowserContext with this viewport, closed afterwards (on chromium's thread only)."""
        context = self._browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()

    def close(self) -> None:
        def stop() -> None:
            try:
                self._browser.close()
            finally:
                self._playwright.stop()

        try:
            self.run(stop)
        finally:
            self._thread.shutdown()


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
