"""Shared fixtures: a real dashboard app on a real loopback server, in a fresh workspace; the fake hub; the browser.

Helpers that are not fixtures are in support.py.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from browser import Chromium
from hub import FakeHub, running_hub
from support import PASSWORD

from dashboard.app import create_app
from dashboard.comfy.folders import ensure_model_folders
from dashboard.config import Settings


def fresh_settings(folder: Path) -> Settings:
    """Settings for a fresh workspace in `folder`, ignoring the machine's environment."""
    workspace = folder / "workspace"
    settings = Settings.from_env({}, workspace=str(workspace), status_interval="0.2", official_templates="false")
    ensure_model_folders(settings.models_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings for a fresh workspace in tmp_path, ignoring the machine's environment."""
    return fresh_settings(tmp_path)


@pytest.fixture
def make_client(aiohttp_client, settings):
    """Build a test client for an app with these settings (or changed ones) and a backend."""

    async def make(backend=None, **changes):
        return await aiohttp_client(create_app(settings.replace(**changes), backend))

    return make


@pytest.fixture
def secure(make_client):
    """Build a client of an app with auth on (user `admin`, password PASSWORD), with these settings changed."""

    async def start(**changes):
        return await make_client(enable_auth=True, admin_password=PASSWORD, **changes)

    return start


@pytest.fixture
async def client(make_client):
    """A client of the standalone app with no ComfyUI."""
    return await make_client()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _module_app(tmp_path_factory):
    client = TestClient(TestServer(create_app(fresh_settings(tmp_path_factory.mktemp("module-app")))))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
def module_client(request, _module_app):
    """`client`, but one app for all the tests of a module that only read from it (and mark themselves MODULE_LOOP).

    A test that changes the app, its services or its files takes `client` instead.
    """
    marker = request.node.get_closest_marker("asyncio")
    if marker is None or marker.kwargs.get("loop_scope") != "module":
        raise pytest.UsageError(f"{request.node.nodeid} takes module_client: mark it MODULE_LOOP (support.py)")
    return _module_app


@pytest.fixture
def hub():
    """A fake Hugging Face hub on 127.0.0.1 (its URL in `hub.url`)."""
    hub = FakeHub()
    with running_hub(hub) as url:
        hub.url = url
        yield hub


@pytest.fixture(scope="session")
def chromium():
    """The session's one headless chromium (browser.Chromium), started by the first test that needs it."""
    chromium = Chromium()
    yield chromium
    chromium.close()


@pytest.fixture
def browser(chromium):
    """`with browser(width=1280, height=860) as context:` a fresh BrowserContext of the session's chromium.

    A test that takes this fixture runs on chromium's thread (see pytest_pyfunc_call below).
    """
    return chromium.context


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run the body of a test that takes `browser` on chromium's thread, where Playwright's sync API belongs."""
    if "browser" not in pyfuncitem.fixturenames:
        return None
    test = pyfuncitem.obj
    if inspect.iscoroutinefunction(test):
        raise pytest.UsageError(f"{pyfuncitem.nodeid}: a test that takes `browser` uses Playwright's sync API")
    arguments = {name: pyfuncitem.funcargs[name] for name in inspect.signature(test).parameters}
    pyfuncitem.funcargs["chromium"].run(test, **arguments)
    return True
