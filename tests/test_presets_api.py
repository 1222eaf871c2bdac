"""The preset API: listing, filters, detail, status, user presets and official templates."""

from __future__ import annotations

import pytest
from support import MODULE_LOOP, call, put_model

from dashboard.api.context import SERVICES

WAN = "WAN_22_5B_TIV2"
WAN_FILES = ["diffusion_models/wan2.2_ti2v_5B_fp16.safetensors",
             "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors", "vae/wan2.2_vae.safetensors"]

USER_PRESET = """
id: MY_TINY_PRESET
name: My tiny preset
category: Image Generation
type: image
description: A LoRA I like.
tags: [Mine, LoRA]
files:
  - path: loras/tiny.safetensors
    url: https://example.com/files/tiny.safetensors
    size: 1234
"""


@MODULE_LOOP
async def test_lists_the_catalogue_as_in_the_spec(module_client):
    body = await call(module_client, "GET", "/api/presets")
    assert body["total"] >= 56 and body["filtered"] == body["total"]
    assert body["categories"] == ["Audio Generation", "Image Generation", "Video Generation"]
    assert body["errors"] == []
    wan = next(p for p in body["presets"] if p["id"] == WAN)
    assert wan["category"] == "Video Generation" and wan["type"] == "video"
    assert wan["source"] == "shipped" and wan["gated"] is False and wan["installed"] is False
    assert wan["download_size"].endswith("GB")
    assert {"description", "use_case", "tags"} <= wan.keys()


@MODULE_LOOP
async def test_filters_combine(module_client):
    video = await call(module_client, "GET", "/api/presets?type=video")
    assert video["filtered"] > 0 and all(p["type"] == "video" for p in video["presets"])
    by_category = await call(module_client, "GET", "/api/presets?category=Video%20Generation")
    assert {p["id"] for p in by_category["presets"]} == {p["id"] for p in video["presets"]}
    wan = await call(module_client, "GET", "/api/presets?search=WAN&type=video")
    assert wan["filtered"] > 0 and all("wan" in (p["name"] + p["description"] + " ".join(p["tags"])).lower()
                                       for p in wan["presets"])
    none = await call(module_client, "GET", "/api/presets?search=wan&type=audio")
    assert none["filtered"] == 0 and none["total"] == video["total"]


@MODULE_LOOP
async def test_search_matches_tags_case_insensitively(module_client):
    body = await call(module_client, "GET", "/api/presets?search=TEXT-TO-VIDEO")
    assert body["filtered"] > 0
    assert all("text-to-video" in p["tags"] or "text-to-video" in (p["name"] + p["description"]).lower()
               for p in body["presets"])


@pytest.mark.parametrize("query", ["installed=yes", "installed=1", "type=3d", "category=Music",
                                   "search=" + "x" * 201])
@MODULE_LOOP
async def test_bad_filters_are_invalid_request(module_client, query):
    body = await call(module_client, "GET", f"/api/presets?{query}", status=400)
    assert body["error"]["code"] == "INVALID_REQUEST"


@MODULE_LOOP
async def test_detail_lists_files_with_urls(module_client):
    body = await call(module_client, "GET", f"/api/presets/{WAN}")
    assert [f["path"] for f in body["files"]] == WAN_FILES
    assert all(f["url"].startswith("https://huggingface.co/Comfy-Org/") and "/resolve/" in f["url"]
               for f in body["files"])
    assert body["install_date"] is None and body["dependencies"] == [] and isinstance(body["workflows"], list)
    assert body["requirements"]["vram_gb"] > 0


@MODULE_LOOP
async def test_unknown_preset_is_404(module_client):
    for url in ("/api/presets/NOPE", "/api/presets/NOPE/status"):
        body = await call(module_client, "GET", url, status=404)
        assert body["error"]["code"] == "PRESET_NOT_FOUND"


async def test_installed_when_every_required_file_is_present(client, settings):
    client.app[SERVICES].index.max_age = 0
    status = await call(client, "GET", f"/api/presets/{WAN}/status")
    assert status["status"] == "not_installed" and status["files"] == {"total": 3, "completed": 0, "failed": 0}
    put_model(settings.models_dir, WAN_FILES[0])
    status = await call(client, "GET", f"/api/presets/{WAN}/status")
    assert status["status"] == "partial" and status["files"]["completed"] == 1 and 0 < status["progress"] < 100
    for path in WAN_FILES[1:]:
        put_model(settings.models_dir, path)
    status = await call(client, "GET", f"/api/presets/{WAN}/status")
    assert status["status"] == "installed" and status["progress"] == 100
    detail = await call(client, "GET", f"/api/presets/{WAN}")
    assert detail["installed"] is True and detail["install_date"].endswith("Z")
    assert all(f["installed"] for f in detail["files"])
    installed = await call(client, "GET", "/api/presets?installed=true")
    assert WAN in {p["id"] for p in installed["presets"]}
    not_installed = await call(client, "GET", "/api/presets?installed=false")
    assert WAN not in {p["id"] for p in not_installed["presets"]}


async def test_files_in_legacy_folders_count(client, settings):
    client.app[SERVICES].index.max_age = 0
    put_model(settings.models_dir, "unet/wan2.2_ti2v_5B_fp16.safetensors")
    put_model(settings.models_dir, "clip/umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    put_model(settings.models_dir, "vae/wan2.2_vae.safetensors")
    assert (await call(client, "GET", f"/api/presets/{WAN}/status"))["status"] == "installed"


async def test_empty_or_partial_downloads_do_not_count(client, settings):
    client.app[SERVICES].index.max_age = 0
    for path in WAN_FILES:
        put_model(settings.models_dir, path)
    (settings.models_dir / WAN_FILES[0]).write_bytes(b"")
    assert (await call(client, "GET", f"/api/presets/{WAN}/status"))["status"] == "partial"
    (settings.models_dir / WAN_FILES[0]).unlink()
    put_model(settings.models_dir, WAN_FILES[0] + ".part")
    assert (await call(client, "GET", f"/api/presets/{WAN}/status"))["status"] == "partial"


async def test_user_presets_are_added_and_override_without_restart(client, settings):
    client.app[SERVICES].catalogue.max_age = 0
    before = await call(client, "GET", "/api/presets")
    user_dir = settings.data_dir / "presets"
    user_dir.mkdir()
    (user_dir / "mine.yaml").write_text(USER_PRESET)
    override = (await call(client, "GET", f"/api/presets/{WAN}"))
    (user_dir / "wan.yml").write_text(f"""
id: {WAN}
name: My own Wan
category: Video Generation
type: video
files:
  - path: diffusion_models/wan2.2_ti2v_5B_fp16.safetensors
    source:
      repo: Comfy-Org/Wan_2.2_ComfyUI_Repackaged
      file: split_files/diffusion_models/wan2.2_ti2v_5B_fp16.safetensors
    size: 10
""")
    after = await call(client, "GET", "/api/presets")
    assert after["total"] == before["total"] + 1
    mine = next(p for p in after["presets"] if p["id"] == "MY_TINY_PRESET")
    assert mine["source"] == "user" and mine["tags"] == ["mine", "lora"]
    detail = await call(client, "GET", f"/api/presets/{WAN}")
    assert detail["name"] == "My own Wan" and detail["source"] == "user" and len(detail["files"]) == 1
    assert override["name"] != "My own Wan"
    (user_dir / "wan.yml").unlink()
    assert (await call(client, "GET", f"/api/presets/{WAN}"))["source"] == "shipped"


@pytest.mark.parametrize(("content", "complaint"), [
    ("id: [unclosed", "not valid YAML"),
    ("just a string", "preset"),
    ("id: X\nname: x\ncategory: Image Generation\ntype: image\n", "files"),
    (USER_PRESET.replace("loras/tiny.safetensors", "loras/../../../etc/tiny.safetensors"), ".."),
    (USER_PRESET.replace("loras/tiny.safetensors", "/etc/tiny.safetensors"), "relative path"),
    (USER_PRESET.replace("loras/tiny.safetensors", "secrets/tiny.safetensors"), "unknown model folder"),
    (USER_PRESET.replace("size: 1234", "size: -1"), "size"),
    (USER_PRESET.replace("https://example.com/files/tiny.safetensors", "file:///etc/x"), "url"),
    (USER_PRESET.replace("type: image", "type: video"), "does not match"),
    (USER_PRESET + "dependencies: [NOT_A_PRESET]\n", "unknown dependencies"),
    (USER_PRESET.replace("loras/tiny.safetensors", "loras/other.safetensors"), "source file is"),
])
async def test_broken_user_presets_are_listed_and_skipped(client, settings, content, complaint):
    user_dir = settings.data_dir / "presets"
    user_dir.mkdir()
    (user_dir / "broken.yaml").write_text(content)
    body = await call(client, "GET", "/api/presets")
    assert body["total"] >= 56
    assert len(body["errors"]) == 1
    assert body["errors"][0]["file"] == "broken.yaml"
    assert complaint in body["errors"][0]["error"]
    assert "MY_TINY_PRESET" not in {p["id"] for p in body["presets"]}


async def test_official_templates_become_presets(make_client):
    pytest.importorskip("comfyui_workflow_templates_json")
    client = await make_client(official_templates=True)
    body = await call(client, "GET", "/api/presets")
    templates = [p for p in body["presets"] if p["source"] == "template"]
    assert len(templates) > 100
    assert all(p["id"].startswith("TEMPLATE_") for p in templates)
    assert {p["category"] for p in templates} <= {"Audio Generation", "Image Generation", "Video Generation"}
    detail = await call(client, "GET", f"/api/presets/{templates[0]['id']}")
    assert detail["files"] and all("/resolve/" in f["url"] for f in detail["files"])


@MODULE_LOOP
async def test_templates_can_be_turned_off(module_client):
    body = await call(module_client, "GET", "/api/presets")
    assert not [p for p in body["presets"] if p["source"] == "template"]
