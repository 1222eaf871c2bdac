"""The workflow library: shipped, user and template workflows, saving, and what a workflow needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import EMPTY, MODULE_LOOP, call, put_model

from dashboard.api.context import SERVICES
from dashboard.comfy.folders import FOLDER_TYPES
from dashboard.services.catalogue import load_preset_file
from dashboard.services.workflow_format import check_api_workflow, required_models
from dashboard.services.workflows import slugify

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "workflows").glob("*.json"))
PRESETS = {p.id: p for p in (load_preset_file(f, "shipped", set(FOLDER_TYPES))
                             for f in (ROOT / "presets").rglob("*.yaml"))}


# The shipped files


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_workflow_files_are_complete(path):
    data = json.loads(path.read_text())
    assert data["id"] == path.stem and data["name"] and data["category"] and data["description"]
    check_api_workflow(data["workflow"])
    for node in data["workflow"].values():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert len(value) == 2 and value[0] in data["workflow"], (path.name, value)
    if data["preset"] is None:
        assert required_models(data["workflow"], "api") == []
        return
    preset = PRESETS[data["preset"]]
    assert path.stem in preset.workflows  # the preset points back at its workflow
    provided = {f.path for f in preset.files}
    needed = {m["path"] for m in required_models(data["workflow"], "api")}
    assert needed and needed <= provided, needed - provided  # installing the preset is enough to run it


def test_at_least_eight_preset_workflows_and_one_without_models():
    presets = [json.loads(p.read_text())["preset"] for p in SHIPPED]
    assert len([p for p in presets if p]) >= 8 and None in presets
    readme = (ROOT / "workflows" / "README.md").read_text()
    for field in ("id", "name", "category", "description", "preset", "workflow"):
        assert f"`{field}`" in readme


# Listing and reading


@MODULE_LOOP
async def test_lists_shipped_workflows_as_in_the_spec(module_client):
    body = await call(module_client, "GET", "/api/workflows")
    assert body["total"] == len(SHIPPED) == body["filtered"] and body["errors"] == []
    wan = next(w for w in body["workflows"] if w["id"] == "wan22_5b_text_to_video")
    assert wan == {"id": "wan22_5b_text_to_video", "name": "Wan 2.2 5B Text to Video",
                   "category": "Video Generation", "description": wan["description"], "preset": "WAN_22_5B_TIV2",
                   "path": "workflows/wan22_5b_text_to_video.json", "source": "shipped", "format": "api",
                   "tags": wan["tags"]}
    assert {"Image Generation", "Video Generation", "Audio Generation", "Utility"} <= set(body["categories"])


@MODULE_LOOP
async def test_filters_combine(module_client):
    video = await call(module_client, "GET", "/api/workflows?category=video%20generation")
    assert video["filtered"] >= 2 and all(w["category"] == "Video Generation" for w in video["workflows"])
    flux = await call(module_client, "GET", "/api/workflows?search=FLUX%20schnell")
    assert [w["id"] for w in flux["workflows"]] == ["flux_schnell_text_to_image"]
    none = await call(module_client, "GET", "/api/workflows?search=flux&category=Audio%20Generation")
    assert none["filtered"] == 0
    assert (await call(module_client, "GET", "/api/workflows?source=user"))["filtered"] == 0
    bad = await call(module_client, "GET", "/api/workflows?source=elsewhere", 400)
    assert bad["error"]["code"] == "INVALID_REQUEST"


@MODULE_LOOP
async def test_get_one_with_its_json(module_client):
    body = await call(module_client, "GET", "/api/workflows/empty_image")
    assert body["id"] == "empty_image" and body["format"] == "api"
    assert body["workflow"]["2"]["class_type"] == "SaveImage"
    missing = await call(module_client, "GET", "/api/workflows/nope", 404)
    assert missing["error"]["code"] == "WORKFLOW_NOT_FOUND"


# Saving


async def test_save_update_delete_a_user_workflow(client, settings):
    saved = await call(client, "POST", "/api/workflows", 201,
                       json={"name": "My Custom Workflow!", "category": "Custom", "workflow": EMPTY})
    assert saved == {"id": "my_custom_workflow", "status": "saved", "path": "workflows/user/my_custom_workflow.json",
                     "name": "My Custom Workflow!"}
    on_disk = json.loads((settings.data_dir / "workflows" / "my_custom_workflow.json").read_text())
    assert on_disk["workflow"] == EMPTY and on_disk["name"] == "My Custom Workflow!"
    listed = await call(client, "GET", "/api/workflows?source=user")
    assert [w["id"] for w in listed["workflows"]] == ["my_custom_workflow"]

    again = await call(client, "POST", "/api/workflows", 201, json={"name": "my custom workflow", "workflow": EMPTY})
    assert again["id"] == "my_custom_workflow_2"  # a taken id gets a suffix

    changed = await call(client, "PUT", "/api/workflows/my_custom_workflow", json={"name": "Renamed",
                                                                                    "description": "now with words"})
    assert changed["id"] == "my_custom_workflow" and changed["status"] == "saved"
    detail = await call(client, "GET", "/api/workflows/my_custom_workflow")
    assert detail["name"] == "Renamed" and detail["description"] == "now with words" and detail["workflow"] == EMPTY

    assert await call(client, "DELETE", "/api/workflows/my_custom_workflow") == {"id": "my_custom_workflow",
                                                                                  "status": "deleted"}
    await call(client, "GET", "/api/workflows/my_custom_workflow", 404)
    assert not (settings.data_dir / "workflows" / "my_custom_workflow.json").exists()


@pytest.mark.parametrize(("name", "expected"), [
    ("../../etc/passwd", "etc_passwd"), ("..", "workflow"), ("Ünïcödé Flow", "unicode_flow"), ("CON", "con_workflow"),
    ("a/b\\c", "a_b_c"), ("x" * 120, "x" * 64), ("empty image", "empty_image_2")])
async def test_ids_are_safe_slugs(client, settings, name, expected):
    saved = await call(client, "POST", "/api/workflows", 201, json={"name": name, "workflow": EMPTY})
    assert saved["id"] == expected
    files = [p.name for p in (settings.data_dir / "workflows").iterdir()]
    assert files == [f"{expected}.json"]


def test_slugify():
    assert slugify("SDXL + LoRA (v2)") == "sdxl_lora_v2"


@pytest.mark.parametrize("workflow", [[], {}, {"1": {"class_type": "X"}}, {"nodes": [], "links": []}, "x"])
async def test_saving_a_structurally_invalid_workflow_is_invalid_workflow(client, workflow):
    body = await call(client, "POST", "/api/workflows", 400, json={"name": "bad", "workflow": workflow})
    assert body["error"]["code"] == "INVALID_WORKFLOW"


@pytest.mark.parametrize("body", [{"workflow": EMPTY}, {"name": "", "workflow": EMPTY}, {"name": "x"},
                                  {"name": "x", "workflow": EMPTY, "extra": 1}, {"name": 3, "workflow": EMPTY}])
async def test_bad_save_requests_are_invalid_request(client, body):
    answer = await call(client, "POST", "/api/workflows", 400, json=body)
    assert answer["error"]["code"] == "INVALID_REQUEST"


async def test_shipped_workflows_are_read_only(client):
    for method, kwargs in (("PUT", {"json": {"name": "mine now"}}), ("DELETE", {})):
        body = await call(client, method, "/api/workflows/empty_image", 403, **kwargs)
        assert body["error"]["code"] == "FORBIDDEN" and body["error"]["details"]["source"] == "shipped"
    await call(client, "PUT", "/api/workflows/nope", 404, json={"name": "x"})
    await call(client, "DELETE", "/api/workflows/nope", 404)


async def test_update_checks_the_workflow(client):
    await call(client, "POST", "/api/workflows", 201, json={"name": "mine", "workflow": EMPTY})
    body = await call(client, "PUT", "/api/workflows/mine", 400, json={"workflow": {"1": 2}})
    assert body["error"]["code"] == "INVALID_WORKFLOW"
    assert (await call(client, "PUT", "/api/workflows/mine", 400, json={}))["error"]["code"] == "INVALID_REQUEST"


async def test_files_dropped_in_by_hand_are_read_and_broken_ones_reported(client, settings):
    folder = settings.data_dir / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handmade.json").write_text(json.dumps({"name": "Handmade", "workflow": EMPTY}))
    (folder / "broken.json").write_text("{not json")
    (folder / "ui_format.json").write_text(json.dumps({"name": "UI", "workflow": {"nodes": [], "links": []}}))
    (folder / "empty_image.json").write_text(json.dumps({"name": "My empty image", "workflow": EMPTY}))
    body = await call(client, "GET", "/api/workflows?source=user")
    assert sorted(w["id"] for w in body["workflows"]) == ["empty_image", "handmade"]
    assert sorted(e["file"] for e in body["errors"]) == ["user:broken.json", "user:ui_format.json"]
    replaced = await call(client, "GET", "/api/workflows/empty_image")  # a user file replaces a shipped one
    assert replaced["name"] == "My empty image" and replaced["source"] == "user"


# Requirements


async def test_requirements_name_missing_models_and_the_presets_that_provide_them(client, settings):
    body = await call(client, "GET", "/api/workflows/wan22_5b_text_to_video/requirements")
    assert body["workflow_id"] == "wan22_5b_text_to_video" and body["preset"] == "WAN_22_5B_TIV2"
    assert body["satisfied"] is False and body["presets"][0] == "WAN_22_5B_TIV2"
    assert set(body["missing"]) == {"diffusion_models/wan2.2_ti2v_5B_fp16.safetensors",
                                    "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                    "vae/wan2.2_vae.safetensors"}
    vae = next(m for m in body["models"] if m["type"] == "vae")
    assert vae == {"type": "vae", "name": "wan2.2_vae.safetensors", "path": "vae/wan2.2_vae.safetensors",
                   "nodes": ["3"], "installed": False, "presets": vae["presets"], "url": None}
    assert vae["presets"][0] == "WAN_22_5B_TIV2"

    for path in body["missing"]:
        put_model(settings.models_dir, path)
    client.app[SERVICES].index.invalidate()  # the index re-scans at most once a second otherwise
    installed = await call(client, "GET", "/api/workflows/wan22_5b_text_to_video/requirements")
    assert installed["satisfied"] is True and installed["missing"] == [] and not installed["presets"]
    assert all(m["installed"] for m in installed["models"])


async def test_requirements_of_a_model_free_workflow_and_a_user_one(client):
    body = await call(client, "GET", "/api/workflows/empty_image/requirements")
    assert body["models"] == [] and body["satisfied"] is True
    lora = {**EMPTY, "3": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "sub\\mine.safetensors",
                                                                             "strength_model": 1.0, "model": ["4", 0]}},
            "4": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x_foo.pth"}},
            "5": {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}},
            "6": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "clip_vision_h.safetensors"}}}
    await call(client, "POST", "/api/workflows", 201, json={"name": "loras", "workflow": lora})
    body = await call(client, "GET", "/api/workflows/loras/requirements")
    assert sorted(body["missing"]) == ["clip_vision/clip_vision_h.safetensors", "loras/sub/mine.safetensors",
                                       "upscale_models/4x_foo.pth"]


# Official templates


async def test_official_templates_are_listed_read_only_and_not_executable(make_client, settings):
    client = await make_client(official_templates=True)
    body = await call(client, "GET", "/api/workflows?source=template")
    if body["filtered"] == 0:
        pytest.skip("comfyui-workflow-templates is not installed")
    template = body["workflows"][0]
    assert template["id"].startswith("template:") and template["format"] == "ui" and template["source"] == "template"
    detail = await call(client, "GET", f"/api/workflows/{template['id']}")
    assert isinstance(detail["workflow"].get("nodes"), list)  # served as it is, in the UI format
    refused = await call(client, "POST", "/api/comfyui/execute", 400, json={"workflow_id": template["id"]})
    assert refused["error"]["code"] == "INVALID_WORKFLOW" and "UI format" in refused["error"]["message"]
    await call(client, "DELETE", f"/api/workflows/{template['id']}", 403)
    with_models = next((w for w in body["workflows"] if w["preset"]), None)
    if with_models is not None:
        needs = await call(client, "GET", f"/api/workflows/{with_models['id']}/requirements")
        assert needs["models"] and with_models["preset"] in needs["presets"]
