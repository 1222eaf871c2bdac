"""Integration tier: the package inside a real ComfyUI (skipped unless COMFYUI_DIR is set)."""

from __future__ import annotations

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


def test_broken_dashboard_leaves_comfyui_serving(tmp_path):
    import urllib.request

    with running_comfyui(tmp_path, {"DASHBOARD_PORT": "not-a-port"}) as url:
        with urllib.request.urlopen(url + "/api/models", timeout=5) as response:
            assert response.status == 200
        try:
            urllib.request.urlopen(url + "/dashboard/health", timeout=5)
            raise AssertionError("dashboard should not be mounted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    assert "ComfyUI Dashboard failed to set up" in comfyui_log(tmp_path)
