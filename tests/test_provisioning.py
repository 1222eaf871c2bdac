"""Headless provisioning for Docker entrypoints: the presets command and PRESET_DOWNLOAD."""

from __future__ import annotations

import pytest
from dashboard_process import presets_command
from downloads_support import Events, sha256_of, write_preset, write_workspace_preset

MB = 1024 * 1024


@pytest.fixture
def hub(hub):
    hub.add_file("org/tiny", "tiny.safetensors", size=2 * MB)
    return hub


def test_presets_install_shows_progress_and_exits_0(tmp_path, hub):
    workspace = tmp_path / "workspace"
    write_workspace_preset(workspace, "TINY", [
        {"path": "loras/tiny.safetensors", "repo": "org/tiny", "file": "tiny.safetensors", "size": 2 * MB}])
    result = presets_command(workspace, hub.url, "install", "TINY")
    assert result.returncode == 0, result.stderr
    assert "TINY [" in result.stderr and "100.0%" in result.stderr and "TINY: installed" in result.stderr
    target = workspace / "models" / "loras" / "tiny.safetensors"
    assert sha256_of(target) == hub.repos["org/tiny"]["main"]["tiny.safetensors"].sha256
    again = presets_command(workspace, hub.url, "install", "TINY")
    assert again.returncode == 0 and "already installed" in again.stderr
    status = presets_command(workspace, hub.url, "status", "TINY")
    assert "TINY: installed (1/1 files, 100.0%)" in status.stdout


def test_presets_install_fails_with_a_non_zero_exit(tmp_path, hub):
    workspace = tmp_path / "workspace"
    write_workspace_preset(workspace, "BROKEN", [
        {"path": "loras/gone.safetensors", "repo": "org/tiny", "file": "gone.safetensors", "size": MB}])
    result = presets_command(workspace, hub.url, "install", "BROKEN", "NOT_A_PRESET")
    assert result.returncode == 1
    assert "NOT_A_PRESET: No preset with id" in result.stderr
    assert "BROKEN: gone.safetensors does not exist in org/tiny at main" in result.stderr


async def test_preset_download_installs_at_server_start(aiohttp_client, settings, hub):
    from dashboard.app import create_app

    write_preset(settings, "TINY", [
        {"path": "loras/tiny.safetensors", "repo": "org/tiny", "file": "tiny.safetensors", "size": 2 * MB}])
    app = create_app(settings.replace(hf_endpoint=hub.url, preset_download=("TINY", "NOT_A_PRESET")))
    events = Events(app)  # subscribed before the app starts and queues the install
    client = await aiohttp_client(app)
    assert (await events.wait("download_complete"))["status"] == "success"
    status = await (await client.get("/api/presets/TINY/status")).json()
    assert status["status"] == "installed"
