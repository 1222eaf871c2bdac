"""Integration tier: the package inside a real ComfyUI (skipped unless COMFYUI_DIR is set)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import aiohttp
import pytest
from processes import free_port
from real_comfyui import comfyui_log, requires_comfyui, running_comfyui

pytestmark = [requires_comfyui, pytest.mark.comfyui]


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui")
    port = free_port()
    with running_comfyui(base, {"DASHBOARD_PORT": str(port)}) as url:
        yield url, f"http://127.0.0.1:{port}", base


async def test_dashboard_answers_inside_comfyui(comfyui):
    url, _port_url, _base = comfyui
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/dashboard/health") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "healthy"
        async with session.get(url + "/dashboard/api/comfyui/health") as response:
            body = await response.json()
            assert body["status"] == "healthy" and body["version"]
        async with session.get(url + "/dashboard") as response:  # redirected to the page
            assert response.status == 200 and str(response.url).endswith("/dashboard/")


async def test_comfyui_own_routes_are_untouched(comfyui):
    url, _port_url, _base = comfyui
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/api/models") as response:
            folders = await response.json()
            assert "checkpoints" in folders and "loras" in folders
            assert "X-API-Version" not in response.headers
        async with session.ws_connect(url + "/ws") as ws:
            message = await ws.receive_json(timeout=10)
            assert message["type"] == "status"


async def test_separate_port_has_the_spec_layout(comfyui):
    _url, port_url, _base = comfyui
    async with aiohttp.ClientSession() as session:
        async with session.get(port_url + "/api/comfyui/health") as response:
            assert (await response.json())["status"] == "healthy"
        async with session.get(port_url + "/api/openapi.json") as response:
            assert response.status == 200


async def test_the_separate_port_serves_comfyuis_files_as_its_view_does(comfyui):
    url, port_url, base = comfyui
    (base / "output" / "renders").mkdir(parents=True, exist_ok=True)
    (base / "output" / "renders" / "dashboard-view.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 5000)
    query = {"filename": "dashboard-view.png", "subfolder": "renders", "type": "output"}
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/view", params=query) as response:  # ComfyUI's own
            comfyui_answer = (response.status, response.content_type, await response.read())
        async with session.get(port_url + "/api/comfyui/view", params=query) as response:
            assert (response.status, response.content_type, await response.read()) == comfyui_answer
        async with session.get(port_url + "/api/comfyui/view", params={**query, "subfolder": ".."}) as response:
            assert response.status == 400


@pytest.mark.parametrize("env, reason", [
    ({"DASHBOARD_PORT": "not-a-port"}, "DASHBOARD_PORT: expected a port number, got 'not-a-port'"),
    ({"DASHBOARD_DATA_DIR": "{base}/taken"}, "DASHBOARD_DATA_DIR: the data folder {base}/taken cannot be used"),
])
def test_a_dashboard_that_failed_to_start_answers_503_and_comfyui_keeps_serving(tmp_path, env, reason):
    (tmp_path / "taken").write_text("not a folder")
    env = {name: value.format(base=tmp_path) for name, value in env.items()}
    reason = reason.format(base=tmp_path)
    with running_comfyui(tmp_path, env) as url:
        with urllib.request.urlopen(url + "/api/models", timeout=5) as response:
            assert response.status == 200
        for path in ("/dashboard/health", "/dashboard/api/system/status", "/dashboard/"):
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(url + path, timeout=5)
            error = json.load(answer.value)["error"]
            assert answer.value.code == 503 and error["code"] == "DASHBOARD_UNAVAILABLE", path
            assert error["message"].startswith(f"ComfyUI Dashboard failed to start: {reason}")
    log = comfyui_log(tmp_path)
    assert len([line for line in log.splitlines() if "ComfyUI Dashboard failed to start" in line]) == 1, log
    assert not re.search(r'File "[^"]*dashboard', log)  # no traceback through the dashboard's code


async def test_presets_for_a_newer_comfyui_are_listed_as_such(comfyui):
    url, _port_url, _base = comfyui
    async with aiohttp.ClientSession() as session, session.get(url + "/dashboard/api/presets") as response:
        listing = await response.json()
    assert listing["errors"] == []
    newer = {p["id"]: p["requires"] for p in listing["presets"] if p["requires"]}
    assert newer == {i: {"comfyui_folders": ["latent_upscale_models"]}
                     for i in ["HUNYUAN_VIDEO_1_5_I2V", "HUNYUAN_VIDEO_1_5_T2V", "LTX_2_3_T2V", "LTX_2_T2V"]}
