"""The custom-node entry point, against a stand-in of ComfyUI's PromptServer."""

from __future__ import annotations

import logging
import socket
import sys

import aiohttp
import pytest
from comfyui_standin import COMFYUI_0_3_64_FOLDERS, ROOT, clean_env, serve_custom_node
from processes import free_port


@pytest.fixture
def comfy_env(monkeypatch, tmp_path):
    clean_env(monkeypatch)
    return monkeypatch, tmp_path


async def _serve(aiohttp_client, comfy_env):
    monkeypatch, base = comfy_env
    return await serve_custom_node(monkeypatch, base, aiohttp_client)


async def test_exports_what_comfyui_needs(aiohttp_client, comfy_env):
    module, _server, _client = await _serve(aiohttp_client, comfy_env)
    assert module.NODE_CLASS_MAPPINGS == {}
    assert module.WEB_DIRECTORY == "./web/comfyui"


async def test_dashboard_is_mounted_under_its_prefix(aiohttp_client, comfy_env):
    _module, _server, client = await _serve(aiohttp_client, comfy_env)
    response = await client.get("/dashboard/health")
    assert response.status == 200
    assert (await response.json())["status"] == "healthy"
    health = await (await client.get("/dashboard/api/comfyui/health")).json()
    assert health == {"status": "healthy", "version": None, "queue": {"pending": 0, "running": 0}}
    missing = await client.get("/dashboard/api/nope")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "NOT_FOUND"


async def test_comfyui_routes_keep_answering(aiohttp_client, comfy_env):
    _module, _server, client = await _serve(aiohttp_client, comfy_env)
    for path in ("/models", "/api/models"):
        response = await client.get(path)
        assert response.status == 200
        assert await response.json() == ["checkpoints", "loras", "vae"]
        assert "X-API-Version" not in response.headers  # our middlewares never touch ComfyUI's routes
    async with client.ws_connect("/ws") as ws:
        assert (await ws.receive_json())["type"] == "status"


async def test_uses_comfyui_folders(aiohttp_client, comfy_env):
    _module, _server, client = await _serve(aiohttp_client, comfy_env)
    status = await (await client.get("/dashboard/api/system/status")).json()
    assert status["disk"]["path"] == str(comfy_env[1] / "models")


async def test_separate_port_serves_the_spec_layout(aiohttp_client, comfy_env):
    monkeypatch, _base = comfy_env
    port = free_port()
    monkeypatch.setenv("DASHBOARD_PORT", str(port))
    _module, server, client = await _serve(aiohttp_client, comfy_env)
    server.prompt_queue.put((1, "abc", {}, {}, []))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/health") as response:
            assert response.status == 200
        async with session.get(f"http://127.0.0.1:{port}/api/comfyui/health") as response:
            assert (await response.json())["queue"] == {"pending": 1, "running": 0}
    # Same services on both: the prefix on ComfyUI's port sees the same queue.
    assert (await (await client.get("/dashboard/api/comfyui/health")).json())["queue"]["pending"] == 1


async def test_the_page_on_the_separate_port_shows_comfyuis_outputs_through_the_api(aiohttp_client, comfy_env):
    monkeypatch, base = comfy_env
    port = free_port()
    monkeypatch.setenv("DASHBOARD_PORT", str(port))
    _module, _server, client = await _serve(aiohttp_client, comfy_env)
    (base / "output" / "renders").mkdir(parents=True)
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4000
    (base / "output" / "renders" / "ComfyUI_00001_.png").write_bytes(image)
    (base / "output" / "page.html").write_text("<script>alert(1)</script>")
    (base / "secret.txt").write_text("not an output")
    own = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(own + "/") as response:
            assert 'data-comfyui-view="api/comfyui/view"' in await response.text()

        async def view(**query):
            async with session.get(own + "/api/comfyui/view", params=query) as response:
                return response.status, response.content_type, await response.read()

        assert await view(filename="ComfyUI_00001_.png", subfolder="renders") == (200, "image/png", image)
        assert (await view(filename="page.html"))[:2] == (200, "application/octet-stream")  # never rendered
        for query, status in [({"filename": "secret.txt", "subfolder": ".."}, 400),
                              ({"filename": "../secret.txt"}, 400), ({"filename": "gone.png"}, 404),
                              ({"filename": "x.png", "type": "models"}, 400)]:
            assert (await view(**query))[0] == status, query
    page = await (await client.get("/dashboard/")).text()
    assert 'data-comfyui-view="../view"' in page  # on ComfyUI's own port: ComfyUI's /view itself

#: Dashboard paths a user or script reaches; a dashboard that failed to start answers each with 503.
DASHBOARD_PATHS = [("GET", "/dashboard/health"), ("GET", "/dashboard/api/system/status"), ("GET", "/dashboard/"),
                   ("GET", "/dashboard/api/presets"), ("POST", "/dashboard/api/presets/WAN_22_5B_TIV2/install"),
                   ("GET", "/dashboard/api/nope"), ("GET", "/dashboard/assets/app.js")]


async def _assert_failed_start(client, caplog, reason: str) -> None:
    """Every dashboard route answers 503 DASHBOARD_UNAVAILABLE with `reason`; ComfyUI answers as ever."""
    for method, path in DASHBOARD_PATHS:
        response = await client.request(method, path)
        body = await response.json()
        assert response.status == 503, (path, body)
        assert body["error"]["code"] == "DASHBOARD_UNAVAILABLE", path
        assert body["error"]["message"].startswith("ComfyUI Dashboard failed to start: ")
        assert reason in body["error"]["message"] and reason in body["error"]["details"]["reason"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/dashboard/ws")
    assert refused.value.status == 503
    assert (await client.get("/api/models")).status == 200
    async with client.ws_connect("/ws") as ws:
        assert (await ws.receive_json())["type"] == "status"
    lines = [r for r in caplog.records if r.name.startswith("dashboard") and r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "failed to start" in lines[0].getMessage(), [r.getMessage() for r in lines]
    assert reason in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.INFO)
    assert "Traceback" not in caplog.text


async def test_bad_setting_makes_the_dashboard_answer_503_and_comfyui_keeps_serving(aiohttp_client, comfy_env,
                                                                                    caplog):
    monkeypatch, _base = comfy_env
    monkeypatch.setenv("DASHBOARD_PORT", "not-a-port")
    with caplog.at_level(logging.INFO):
        module, _server, client = await _serve(aiohttp_client, comfy_env)
        assert module.NODE_CLASS_MAPPINGS == {}
        await _assert_failed_start(client, caplog, "DASHBOARD_PORT: expected a port number, got 'not-a-port'")


async def test_auth_with_nobody_to_log_in_makes_the_dashboard_answer_503(aiohttp_client, comfy_env, caplog):
    monkeypatch, _base = comfy_env
    monkeypatch.setenv("ENABLE_AUTH", "true")
    with caplog.at_level(logging.INFO):
        _module, _server, client = await _serve(aiohttp_client, comfy_env)
        await _assert_failed_start(client, caplog, "ENABLE_AUTH is on but there is no user to log in as")


@pytest.mark.parametrize("where", ["a file", "under a file"])
async def test_unusable_data_folder_makes_the_dashboard_answer_503(aiohttp_client, comfy_env, caplog, where):
    monkeypatch, base = comfy_env
    (base / "taken").write_text("not a folder")
    data_dir = base / "taken" if where == "a file" else base / "taken" / "dashboard"
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(data_dir))
    with caplog.at_level(logging.INFO):
        _module, _server, client = await _serve(aiohttp_client, comfy_env)
        await _assert_failed_start(client, caplog, f"DASHBOARD_DATA_DIR: the data folder {data_dir} cannot be used")


async def test_a_missing_package_makes_the_dashboard_answer_503(aiohttp_client, comfy_env, caplog):
    monkeypatch, _base = comfy_env
    package = str(ROOT).replace(".", "_x_") + ".dashboard"  # the name ComfyUI loads the package under
    for name in [n for n in sys.modules if n.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, as in a new ComfyUI process
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # not installed in ComfyUI's Python
    with caplog.at_level(logging.INFO):
        _module, _server, client = await _serve(aiohttp_client, comfy_env)
        await _assert_failed_start(client, caplog, "the Python package 'jsonschema' is missing or too old: "
                                                   "install this custom node's requirements.txt")


async def test_a_failed_start_opens_no_port_of_its_own(aiohttp_client, comfy_env):
    monkeypatch, base = comfy_env
    (base / "taken").write_text("not a folder")
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(base / "taken"))
    port = free_port()
    monkeypatch.setenv("DASHBOARD_PORT", str(port))
    _module, _server, client = await _serve(aiohttp_client, comfy_env)
    assert (await client.get("/dashboard/health")).status == 503
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nobody listens there


async def test_port_in_use_keeps_the_prefix_working(aiohttp_client, comfy_env, caplog):
    monkeypatch, _base = comfy_env
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("DASHBOARD_PORT", str(taken.getsockname()[1]))
        _module, _server, client = await _serve(aiohttp_client, comfy_env)
        assert (await client.get("/dashboard/health")).status == 200
        assert "could not listen" in caplog.text


async def test_presets_see_every_comfyui_model_folder(aiohttp_client, comfy_env):
    _monkeypatch, base = comfy_env
    _module, _server, client = await _serve(aiohttp_client, comfy_env)
    for path in ("models/unet/wan2.2_ti2v_5B_fp16.safetensors", "models/clip/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                 "models/vae/wan2.2_vae.safetensors"):
        (base / path).parent.mkdir(parents=True, exist_ok=True)
        (base / path).write_bytes(b"weights")
    status = await (await client.get("/dashboard/api/presets/WAN_22_5B_TIV2/status")).json()
    assert status["status"] == "installed"
    listing = await (await client.get("/dashboard/api/presets?type=video")).json()
    assert listing["filtered"] > 0


async def test_dashboard_without_slash_leads_to_the_page(aiohttp_client, comfy_env):
    _module, _server, client = await _serve(aiohttp_client, comfy_env)
    response = await client.get("/dashboard", allow_redirects=False)
    assert response.status == 301 and response.headers["Location"] == "dashboard/"
    page = await client.get("/dashboard")
    assert page.status == 200 and "<html" in (await page.text()).lower()


async def test_presets_for_a_newer_comfyui_say_so_and_cannot_be_installed(aiohttp_client, comfy_env, caplog):
    monkeypatch, base = comfy_env
    with caplog.at_level(logging.INFO):
        _module, _server, client = await serve_custom_node(monkeypatch, base, aiohttp_client, COMFYUI_0_3_64_FOLDERS)
        for _ in range(2):
            listing = await (await client.get("/dashboard/api/presets")).json()
            assert listing["errors"] == []
    newer = {p["id"]: p["requires"] for p in listing["presets"] if p["requires"]}
    needs = {"comfyui_folders": ["latent_upscale_models"]}
    assert newer == {i: needs for i in ["HUNYUAN_VIDEO_1_5_I2V", "HUNYUAN_VIDEO_1_5_T2V", "LTX_2_3_T2V", "LTX_2_T2V"]}
    assert listing["total"] == len(listing["presets"])
    assert not any(p["installed"] for p in listing["presets"] if p["requires"])
    status = await (await client.get("/dashboard/api/presets/LTX_2_T2V/status")).json()
    assert status["status"] == "unsupported"
    detail = await (await client.get("/dashboard/api/presets/LTX_2_T2V")).json()
    assert detail["requires"] == {"comfyui_folders": ["latent_upscale_models"]}
    install = await client.post("/dashboard/api/presets/LTX_2_T2V/install")
    error = (await install.json())["error"]
    assert install.status == 409 and error["code"] == "PRESET_UNSUPPORTED"
    assert "needs a newer ComfyUI" in error["message"]
    assert error["details"]["comfyui_folders"] == ["latent_upscale_models"]
    assert not (base / "models" / "latent_upscale_models").exists()
    dashboard_lines = [r for r in caplog.records if r.name.startswith("dashboard")]
    assert not [r.getMessage() for r in dashboard_lines if r.levelno >= logging.WARNING]
    assert len([r for r in dashboard_lines if "need a newer ComfyUI" in r.getMessage()]) == 1
