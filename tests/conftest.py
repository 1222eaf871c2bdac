"""Shared fixtures: a real dashboard app on a real loopback server, in a fresh workspace."""

from __future__ import annotations

import pytest
from hub import FakeHub, running_hub

from dashboard.app import create_app
from dashboard.comfy.folders import ensure_model_folders
from dashboard.config import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings for a fresh workspace in tmp_path, ignoring the machine's environment."""
    workspace = tmp_path / "workspace"
    settings = Settings.from_env({}, workspace=str(workspace), status_interval="0.2", official_templates="false")
    ensure_model_folders(settings.models_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@pytest.fixture
def make_client(aiohttp_client, settings):
    """Build a test client for an app with these settings (or changed ones) and a backend."""

    async def make(backend=None, **changes):
        return await aiohttp_client(create_app(settings.replace(**changes), backend))

    return make


@pytest.fixture
async def client(make_client):
    """A client of the standalone app with no ComfyUI."""
    return await make_client()


@pytest.fixture
def hub():
    """A fake Hugging Face hub on 127.0.0.1 (its URL in `hub.url`)."""
    hub = FakeHub()
    with running_hub(hub) as url:
        hub.url = url
        yield hub
