"""The foundation's HTTP contract: health, system status, errors and versions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import MODULE_LOOP

from dashboard.api.context import SERVICES
from dashboard.comfy.backend import ComfyBackend
from dashboard.errors import ErrorCode


@MODULE_LOOP
async def test_health_reports_version_and_utc_timestamp(module_client):
    response = await module_client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "healthy"
    assert body["version"] == "1.0.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])


@MODULE_LOOP
async def test_every_response_carries_the_api_version(module_client):
    for path in ("/health", "/api/system/status", "/api/nope"):
        response = await module_client.get(path)
        assert response.headers["X-API-Version"] == "1.0.0"


@pytest.mark.parametrize("asked", ["1.0.0", "1", "1.4.2", "v1"])
@MODULE_LOOP
async def test_same_major_version_is_served(module_client, asked):
    response = await module_client.get("/health", headers={"X-API-Version": asked})
    assert response.status == 200


@pytest.mark.parametrize("asked", ["2.0.0", "0.9", "banana", ""])
@MODULE_LOOP
async def test_other_major_version_is_refused(module_client, asked):
    response = await module_client.get("/health", headers={"X-API-Version": asked})
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == "UNSUPPORTED_API_VERSION"
    assert body["error"]["details"]["supported"] == ["1.0.0"]


@MODULE_LOOP
async def test_system_status_has_spec_fields_and_gpu_list(module_client):
    response = await module_client.get("/api/system/status")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "running"
    assert isinstance(body["uptime"], int)
    assert body["services"] == {"dashboard": "running", "comfyui": "unavailable", "preset_manager": "running"}
    resources = body["resources"]
    assert 0 <= resources["cpu_percent"] <= 100
    assert 0 < resources["memory_percent"] <= 100
    assert 0 < resources["disk_used_gb"] <= resources["disk_total_gb"]
    assert isinstance(body["gpus"], list)
    if not body["gpus"]:  # no NVIDIA GPU here: null, never a fake 0
        assert resources["gpu_percent"] is None


@MODULE_LOOP
async def test_system_status_is_served_from_the_background_sample(module_client):
    monitor = module_client.app[SERVICES].system
    taken = monitor.samples_taken
    for _ in range(5):
        assert (await module_client.get("/api/system/status")).status == 200
    # Requests read the last sample; only the sampler's own ticks take new ones.
    assert monitor.samples_taken - taken <= 1


async def test_status_reports_a_reachable_comfyui(make_client):
    class Reachable(ComfyBackend):
        async def reachable(self):
            return True

    client = await make_client(Reachable())
    body = await (await client.get("/api/system/status")).json()
    assert body["services"]["comfyui"] == "running"


@MODULE_LOOP
async def test_comfyui_endpoints_without_comfyui_answer_unavailable(module_client):
    response = await module_client.get("/api/comfyui/health")
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "COMFYUI_UNAVAILABLE"


@MODULE_LOOP
async def test_unknown_route_is_json_not_found(module_client):
    response = await module_client.get("/api/does-not-exist")
    assert response.status == 404
    assert await response.json() == {"error": {"code": "NOT_FOUND", "message": "No such endpoint", "details": {}}}


async def test_wrong_method_is_json_405_with_allow(client):
    response = await client.delete("/health")
    assert response.status == 405
    body = await response.json()
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert body["error"]["details"]["allowed_methods"] == ["GET"]
    assert "GET" in response.headers["Allow"]


async def test_handler_crash_is_a_500_without_traceback(client, caplog):
    monitor = client.app[SERVICES].system

    def explode():
        raise RuntimeError("secret internal detail")

    monitor.status = explode
    response = await client.get("/api/system/status")
    assert response.status == 500
    text = await response.text()
    assert "secret internal detail" not in text and "Traceback" not in text
    assert (await response.json())["error"]["code"] == "INTERNAL_ERROR"
    assert "secret internal detail" in caplog.text  # logged server-side, with its traceback
    assert "Traceback" in caplog.text


def test_every_error_code_has_one_documented_status():
    """The README's error table and the server agree: every code, each with its one status."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("| Code | HTTP |"):]
    table = table[:table.index("\n\n")]
    documented = {}
    for codes, status in re.findall(r"^\| (`[A-Z_]+`(?:, `[A-Z_]+`)*) \| (\d{3}) \|$", table, re.M):
        for code in re.findall(r"`([A-Z_]+)`", codes):
            assert code not in documented, f"{code} is documented twice"
            documented[code] = int(status)
    assert documented == {str(code): code.status for code in ErrorCode}


async def test_standalone_sees_a_remote_comfyui_at_comfyui_url(make_client, aiohttp_server):
    from aiohttp import web

    async def system_stats(request):
        return web.json_response({"system": {"comfyui_version": "0.3.64"}})

    async def queue(request):
        return web.json_response({"queue_running": [[0, "a"]], "queue_pending": [[1, "b"], [2, "c"]]})

    comfy = web.Application()
    comfy.router.add_get("/system_stats", system_stats)
    comfy.router.add_get("/queue", queue)
    server = await aiohttp_server(comfy)
    client = await make_client(comfyui_url=str(server.make_url("")).rstrip("/"))
    status = await (await client.get("/api/system/status")).json()
    assert status["services"]["comfyui"] == "running"
    health = await (await client.get("/api/comfyui/health")).json()
    assert health == {"status": "healthy", "version": "0.3.64", "queue": {"pending": 2, "running": 1}}
    await server.close()
    response = await client.get("/api/comfyui/health")
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "COMFYUI_UNAVAILABLE"
