"""What a workflow needs (POST /api/workflows/requirements) and installing what it misses
(POST /api/workflows/install-missing, with `dry_run`): an official template as the editor saves it,
loader widgets matched against the catalogue, API-format workflows, refusals per file, bad input."""

from __future__ import annotations

import copy
import json
from urllib.parse import urlparse

import pytest
from downloads_support import FAST_RETRY, Events, sha256_of, write_preset
from support import put_model

from dashboard.api.context import SERVICES
from dashboard.services.templates import template_models, templates_dir, ui_nodes

MB = 1024 * 1024
#: An official template (UI format, with a subgraph; four loaders, each declaring its model in properties.models).
TEMPLATE = "video_kandinsky5_t2v"


@pytest.fixture
def app(make_client, hub):
    async def start(**changes):
        client = await make_client(hf_endpoint=hub.url, **changes)
        client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
        return client, Events(client)

    return start


def template() -> dict:
    """The template as the editor saves it, its model names given a prefix so that no shipped preset has them:
    each is then fetched from the URL the template declares, and saved under the name the workflow loads."""
    workflow = json.loads((templates_dir() / f"{TEMPLATE}.json").read_text(encoding="utf-8"))
    names = {m["name"] for m in template_models(workflow)}
    for node in ui_nodes(workflow):
        for model in node.get("properties", {}).get("models", []):
            model["name"] = "t_" + model["name"]
        values = node.get("widgets_values")
        if isinstance(values, list):
            node["widgets_values"] = ["t_" + v if v in names else v for v in values]
    return workflow


def serve_declared_models(hub, workflow: dict, size: int = MB) -> dict[str, str]:
    """Put every model the workflow declares on the hub (its URLs name huggingface.co, which HF_ENDPOINT
    replaces); model-folder path -> the sha256 of the file served."""
    served = {}
    for model in template_models(workflow):
        parts = urlparse(model["url"]).path.strip("/").split("/")
        hub_file = hub.add_file(f"{parts[0]}/{parts[1]}", "/".join(parts[4:]), size=size)
        served[f"{model['directory']}/{model['name']}"] = hub_file.sha256
    return served


def loader(node_id: int, kind: str, *values, models=()) -> dict:
    """A loader node as the editor saves it."""
    return {"id": node_id, "type": kind, "pos": [0, 0], "size": [300, 80], "flags": {}, "order": node_id, "mode": 0,
            "inputs": [], "outputs": [], "properties": {"Node name for S&R": kind, "models": list(models)},
            "widgets_values": list(values)}


def ui_workflow(*nodes) -> dict:
    return {"id": "5e1f", "revision": 0, "last_node_id": len(nodes), "last_link_id": 0, "nodes": list(nodes),
            "links": [], "groups": [], "config": {}, "extra": {}, "version": 0.4}


async def needs(client, workflow, status=200):
    response = await client.post("/api/workflows/requirements", json={"workflow": workflow})
    assert response.status == status, await response.text()
    return await response.json()


async def install_missing(client, workflow, status=202, query=""):
    response = await client.post(f"/api/workflows/install-missing{query}", json={"workflow": workflow})
    assert response.status == status, await response.text()
    return await response.json()


async def test_an_official_template_gets_what_it_declares_saved_under_the_names_it_loads(app, settings, hub):
    workflow = template()
    served = serve_declared_models(hub, workflow)
    client, events = await app()
    answer = await needs(client, workflow)
    assert answer["format"] == "ui"
    assert sorted(answer["missing"]) == sorted(served) == sorted(answer["installable"])
    assert answer["missing_bytes"] == len(served) * MB
    for f in answer["files"]:
        assert f["installed"] is False and f["source"] == "url" and f["size"] == MB and f["error"] is None
        assert f["url"].startswith("https://huggingface.co/") and f["nodes"]

    started = await install_missing(client, workflow)
    assert started["status"] in ("queued", "downloading") and sorted(started["files"]) == sorted(served)
    assert started["bytes_to_download"] == len(served) * MB and started["unavailable"] == []
    done = await events.wait("download_complete", lambda d: d["download_id"] == started["download_id"])
    assert done["status"] == "success" and sorted(done["paths"]) == sorted(served)
    for path, sha256 in served.items():
        assert sha256_of(settings.models_dir / path) == sha256
    after = await needs(client, workflow)
    assert after["missing"] == [] and all(f["installed"] for f in after["files"])
    assert (await install_missing(client, workflow, status=202))["status"] == "installed"


async def test_loader_widgets_are_matched_against_the_catalogue_and_installed_from_the_preset(app, settings, hub):
    hub.add_file("org/vae", "vae.safetensors", size=2 * MB)
    write_preset(settings, "VAE_ONLY", [{"path": "vae/vae.safetensors", "repo": "org/vae", "file": "vae.safetensors",
                                         "size": 2 * MB}])
    put_model(settings.models_dir, "loras/have.safetensors")
    workflow = ui_workflow(loader(1, "VAELoader", "vae.safetensors"),
                           loader(2, "LoraLoader", "have.safetensors", 1.0, 1.0),
                           loader(3, "DualCLIPLoader", "a.safetensors", "b.gguf", "flux"))
    client, events = await app()
    answer = await needs(client, workflow)
    files = {f["path"]: f for f in answer["files"]}
    assert list(files) == ["vae/vae.safetensors", "loras/have.safetensors", "text_encoders/a.safetensors",
                           "text_encoders/b.gguf"]
    vae = files["vae/vae.safetensors"]
    assert vae["source"] == "preset" and vae["presets"] == ["VAE_ONLY"] and vae["size"] == 2 * MB
    assert vae["url"] == f"{hub.url}/org/vae/resolve/main/vae.safetensors" and vae["nodes"] == ["1"]
    assert files["loras/have.safetensors"]["installed"] is True
    unknown = files["text_encoders/a.safetensors"]
    assert unknown["source"] is None and not unknown["installable"]
    assert answer["installable"] == ["vae/vae.safetensors"] and answer["missing_bytes"] == 2 * MB

    started = await install_missing(client, workflow)
    assert started["files"] == ["vae/vae.safetensors"]
    assert {u["path"] for u in started["unavailable"]} == {"text_encoders/a.safetensors", "text_encoders/b.gguf"}
    await events.wait("download_complete", lambda d: d["download_id"] == started["download_id"])
    assert (settings.models_dir / "vae" / "vae.safetensors").stat().st_size == 2 * MB
    status = await (await client.get("/api/presets/VAE_ONLY/status")).json()
    assert status["status"] == "installed"  # the preset's file, verified by its hash: the preset is complete


async def test_an_api_format_workflow_reads_its_loader_inputs(app, settings, hub):
    hub.add_file("org/ckpt", "model.safetensors", size=MB)
    write_preset(settings, "CKPT", [{"path": "checkpoints/model.safetensors", "repo": "org/ckpt",
                                     "file": "model.safetensors", "size": MB}])
    workflow = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
                "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}}}
    client, _events = await app()
    answer = await needs(client, workflow)
    assert answer["format"] == "api" and answer["missing"] == ["checkpoints/model.safetensors"]
    assert answer["files"][0]["nodes"] == ["4"] and answer["files"][0]["source"] == "preset"


async def test_each_file_that_cannot_be_installed_says_why_before_anything_starts(app, settings, hub):
    hub.add_file("org/gated", "gated.safetensors", size=MB, gated=True)
    workflow = ui_workflow(
        loader(1, "UNETLoader", "gated.safetensors", "default", models=[{
            "name": "gated.safetensors", "url": "https://huggingface.co/org/gated/resolve/main/gated.safetensors",
            "directory": "diffusion_models"}]),
        loader(2, "VAELoader", "elsewhere.safetensors", models=[{
            "name": "elsewhere.safetensors", "url": "https://example.com/elsewhere.safetensors", "directory": "vae"}]),
        loader(3, "CLIPLoader", "gone.safetensors", "flux", models=[{
            "name": "gone.safetensors", "url": "https://huggingface.co/org/none/resolve/main/gone.safetensors",
            "directory": "text_encoders"}]),
        loader(4, "LoraLoaderModelOnly", "unknown.safetensors", 1.0))
    client, _events = await app()
    answer = await needs(client, workflow)
    errors = {f["path"]: f["error"] for f in answer["files"]}
    assert answer["installable"] == []
    gated = errors["diffusion_models/gated.safetensors"]
    assert gated["code"] == "DOWNLOAD_FAILED" and gated["details"]["reason"] == "gated"
    elsewhere = errors["vae/elsewhere.safetensors"]
    assert elsewhere["code"] == "INVALID_REQUEST" and elsewhere["details"]["field"] == "url"
    assert errors["text_encoders/gone.safetensors"]["details"]["reason"] == "repository_not_found"
    assert errors["loras/unknown.safetensors"] is None  # no URL, no preset: nothing to ask

    refused = await install_missing(client, workflow, status=502)  # none can: the first one's error
    assert refused["error"]["code"] == "DOWNLOAD_FAILED" and refused["error"]["details"]["reason"] == "gated"
    assert (await (await client.get("/api/downloads")).json())["total"] == 0


async def test_the_dry_run_is_the_plan_and_a_second_install_joins_the_first(app, settings, hub):
    workflow = template()
    served = serve_declared_models(hub, workflow)
    first = hub.repos[next(iter(hub.repos))]["main"]
    for hub_file in first.values():
        hub_file.faults.hold_at = MB // 2  # the downloads wait half-way until released
    client, _events = await app()
    plan = await install_missing(client, workflow, status=200, query="?dry_run=true")
    assert sorted(f["path"] for f in plan["files"]) == sorted(served)
    assert plan["bytes_to_download"] == len(served) * MB and plan["fits"] is True
    assert plan["volumes"][0]["needed_bytes"] == len(served) * MB and plan["access"]["ok"] is True
    assert plan["unavailable"] == [] and plan["downloading"] == []
    assert (await (await client.get("/api/downloads")).json())["total"] == 0
    assert not [p for p in settings.models_dir.rglob("*") if p.is_file()]

    started = await install_missing(client, workflow)
    again = await install_missing(client, workflow, status=202)
    assert again["status"] == "downloading" and again["download_id"] == started["download_id"]
    assert {d["path"] for d in again["downloading"]} == set(served) and again["files"] == []
    assert (await (await client.get("/api/downloads")).json())["total"] == 1
    for hub_file in first.values():
        hub_file.faults.release()


async def test_the_dry_run_asks_the_hub_for_gated_presets(app, settings, hub):
    hub.add_file("org/closed", "closed.safetensors", size=MB, gated=True)
    write_preset(settings, "CLOSED", [{"path": "loras/closed.safetensors", "repo": "org/closed",
                                       "file": "closed.safetensors", "size": MB}], gated=True)
    workflow = ui_workflow(loader(1, "LoraLoaderModelOnly", "closed.safetensors", 1.0))
    client, _events = await app()
    plan = await install_missing(client, workflow, status=200, query="?dry_run=true")
    assert plan["access"]["ok"] is False and plan["access"]["repos"][0]["status"] == "needs_token"


@pytest.mark.parametrize(("body", "code"), [
    ({}, "INVALID_REQUEST"),
    ({"workflow": {"nodes": []}, "extra": 1}, "INVALID_REQUEST"),
    ({"workflow": []}, "INVALID_WORKFLOW"),
    ({"workflow": "text"}, "INVALID_WORKFLOW"),
    ({"workflow": {"1": {"inputs": {}}}}, "INVALID_WORKFLOW"),
])
async def test_bad_input_is_refused_with_its_code(app, body, code):
    client, _events = await app()
    for path in ("/api/workflows/requirements", "/api/workflows/install-missing"):
        response = await client.post(path, json=body)
        assert response.status == 400 and (await response.json())["error"]["code"] == code
    assert (await (await client.get("/api/downloads")).json())["total"] == 0


async def test_the_same_over_the_socket(app, settings, hub):
    workflow = template()
    served = serve_declared_models(hub, workflow)
    client, _events = await app()
    async with client.ws_connect("/ws") as socket:
        for n, action in enumerate(["workflow_requirements", "install_missing_models"]):
            await socket.send_json({"type": "action", "action": action, "id": f"a{n}",
                                    "data": {"workflow": copy.deepcopy(workflow)}})
            while (message := await socket.receive_json(timeout=30))["type"] != "result":
                pass
            assert message["success"], message
            if action == "workflow_requirements":
                assert sorted(message["data"]["missing"]) == sorted(served)
            else:
                assert message["data"]["download_id"].startswith("dl_")
