"""The model inventory inside ComfyUI (stand-in): ComfyUI's folders, and ComfyUI's file-list cache."""

from __future__ import annotations

import asyncio
import sys

import pytest
from comfyui_standin import clean_env, install, load_custom_node
from support import put_model

from dashboard.comfy.backend import ComfyBackend
from dashboard.comfy.inprocess import InProcessBackend


@pytest.fixture
async def comfy(aiohttp_client, monkeypatch, tmp_path):
    clean_env(monkeypatch)
    server = install(monkeypatch, tmp_path, asyncio.get_running_loop())
    folder_paths = sys.modules["folder_paths"]
    folder_paths.filename_list_cache = {"loras": (["x.safetensors"], {}, 0.0),
                                        "checkpoints": (["c.safetensors"], {}, 0.0)}
    load_custom_node(monkeypatch)
    server.add_routes()
    return server, folder_paths, tmp_path, await aiohttp_client(server.app)


async def test_lists_every_comfyui_folder_including_the_extra_loras_path(comfy):
    _server, _folder_paths, base, client = comfy
    put_model(base, "models/loras/local.safetensors")
    put_model(base, "extra/loras/sub/extra.safetensors")
    put_model(base, "models/clip/te.safetensors")
    body = await (await client.get("/dashboard/api/models?type=loras")).json()
    assert [m["path"] for m in body["models"]] == ["loras/local.safetensors", "loras/sub/extra.safetensors"]
    everything = await (await client.get("/dashboard/api/models")).json()
    assert "text_encoders/te.safetensors" in [m["path"] for m in everything["models"]]
    types = (await (await client.get("/dashboard/api/models/types")).json())["types"]
    assert [t["id"] for t in types] == ["checkpoints", "loras", "vae", "text_encoders", "diffusion_models"]
    assert (await client.get("/api/models")).status == 200  # ComfyUI's own route still answers


async def test_deleting_invalidates_comfyuis_file_list_cache(comfy):
    _server, folder_paths, base, client = comfy
    extra = put_model(base, "extra/loras/x.safetensors")
    response = await client.delete("/dashboard/api/models", json={"paths": ["loras/x.safetensors"]})
    body = await response.json()
    assert response.status == 200 and body["deleted"] == 1, body
    assert not extra.exists()
    assert "loras" not in folder_paths.filename_list_cache
    assert "checkpoints" in folder_paths.filename_list_cache  # other folders keep their cache


async def test_models_in_comfyuis_queue_are_in_use(comfy):
    if InProcessBackend.queue is ComfyBackend.queue:
        pytest.skip("InProcessBackend.queue() is not implemented yet (the queue work adds it)")
    server, _folder_paths, base, client = comfy
    model = put_model(base, "models/checkpoints/busy.safetensors")
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "busy.safetensors"}}}
    server.prompt_queue.put((1, "abc", prompt, {}, ["1"]))
    body = await (await client.delete("/dashboard/api/models",
                                      json={"paths": ["checkpoints/busy.safetensors"]})).json()
    assert body["deleted"] == 0 and body["errors"][0]["code"] == "MODEL_IN_USE"
    assert model.exists()
