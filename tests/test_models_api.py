"""The model inventory: GET/DELETE /api/models, GET /api/models/types, GET /api/system/storage."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from downloads_support import write_preset
from support import MODULE_LOOP, call, put_model

from dashboard.api.context import SERVICES
from dashboard.comfy.backend import ComfyBackend
from dashboard.services import model_index
from dashboard.services.model_index import ModelIndex

WAN = "WAN_22_5B_TIV2"
WAN_FILES = ["diffusion_models/wan2.2_ti2v_5B_fp16.safetensors",
             "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors", "vae/wan2.2_vae.safetensors"]
SPEC_TIME = datetime(2026, 2, 15, 10, 0, tzinfo=timezone.utc).timestamp()


REAL_STAT, REAL_SCANDIR = os.stat, os.scandir


def same_dir(listed, directory: Path) -> bool:
    """Whether what os.scandir was given (a path, or a descriptor: the index lists through one where
    it can) is `directory`."""
    return os.path.samestat(REAL_STAT(listed), REAL_STAT(directory))


async def delete(client, body, status: int = 200):
    response = await client.delete("/api/models", json=body)
    assert response.status == status, await response.text()
    return await response.json()


def fresh(client) -> None:
    """Every request sees the disk as it is now (the index otherwise refreshes at most once a second)."""
    client.app[SERVICES].index.max_age = 0


def paths(body) -> list[str]:
    return [m["path"] for m in body["models"]]


# listing


async def test_lists_model_files_as_in_the_spec(client, settings):
    models = settings.models_dir
    put_model(models, "checkpoints/wan21.safetensors", size=100, mtime=SPEC_TIME)
    put_model(models, "checkpoints/日本語/モデル ☕.safetensors", size=10)
    put_model(models, "loras/deep/er/still/Ünïcödé.GGUF", size=20)
    put_model(models, "unet/legacy.safetensors")  # a legacy folder: listed as its type
    for junk in ("checkpoints/partial.safetensors.part", "checkpoints/partial.safetensors.part.json",
                 "checkpoints/readme.txt", "loras/.cache/hidden.safetensors", "vae/no_extension"):
        put_model(models, junk)
    big = models / "vae" / "big.sft"
    with open(big, "wb") as sparse:
        sparse.truncate(3 * 1024**3 // 2)  # 1.5 GiB, no blocks written

    body = await call(client, "GET", "/api/models")
    assert paths(body) == ["checkpoints/wan21.safetensors", "checkpoints/日本語/モデル ☕.safetensors",
                           "diffusion_models/legacy.safetensors", "loras/deep/er/still/Ünïcödé.GGUF",
                           "vae/big.sft"]
    first = body["models"][0]
    assert first == {"path": "checkpoints/wan21.safetensors", "type": "checkpoints", "size_gb": 0.0,
                     "size_bytes": 100, "modified": "2026-02-15T10:00:00Z", "preset": None,
                     "source": None, "sha256": None, "last_used": None, "use_count": 0}  # not hashed: no scan here
    assert body["models"][-1]["size_gb"] == 1.5
    assert body["total"] == 5 and body["total_size_bytes"] == 100 + 10 + 20 + 16 + 3 * 1024**3 // 2
    assert body["total_size_gb"] == 1.5
    assert body["problems"] == [] and body["offset"] == 0 and body["limit"] == 1000


async def test_filters_by_type_legacy_name_and_search(client, settings):
    for path in ("loras/Style/Anime_XL.safetensors", "loras/photo.safetensors", "checkpoints/anime_base.ckpt",
                 "diffusion_models/wan.safetensors", "unet/flux.gguf"):
        put_model(settings.models_dir, path)
    assert paths(await call(client, "GET", "/api/models?type=loras")) == ["loras/Style/Anime_XL.safetensors",
                                                                      "loras/photo.safetensors"]
    legacy = await call(client, "GET", "/api/models?type=unet")
    assert paths(legacy) == ["diffusion_models/flux.gguf", "diffusion_models/wan.safetensors"]
    anime = await call(client, "GET", "/api/models?search=ANIME")
    assert paths(anime) == ["checkpoints/anime_base.ckpt", "loras/Style/Anime_XL.safetensors"]
    assert paths(await call(client, "GET", "/api/models?search=style%20xl&type=loras")) == [
        "loras/Style/Anime_XL.safetensors"]
    nothing = await call(client, "GET", "/api/models?search=anime&type=vae")
    assert nothing["models"] == [] and nothing["total"] == 0 and nothing["total_size_gb"] == 0


@MODULE_LOOP
async def test_unknown_type_is_invalid_and_lists_the_known_ones(module_client):
    body = await call(module_client, "GET", "/api/models?type=secrets", status=400)
    assert body["error"]["code"] == "INVALID_REQUEST"
    assert "checkpoints" in body["error"]["message"] and "loras" in body["error"]["details"]["known_types"]


@pytest.mark.parametrize("query", ["limit=0", "limit=10001", "limit=ten", "offset=-1", "offset=1.5", "sort=colour",
                                   "order=up", "type=", "search=" + "x" * 201, "limit="])
@MODULE_LOOP
async def test_bad_query_values_are_invalid_request(module_client, query):
    body = await call(module_client, "GET", f"/api/models?{query}", status=400)
    assert body["error"]["code"] == "INVALID_REQUEST"


async def test_pages_and_sorts(client, settings):
    for i in range(25):
        put_model(settings.models_dir, f"loras/m{i:02d}.safetensors", size=100 + i, mtime=SPEC_TIME - 60 * (i % 7))
    put_model(settings.models_dir, "checkpoints/B_model.safetensors", size=1)
    put_model(settings.models_dir, "vae/a_model.safetensors", size=2)

    page = await call(client, "GET", "/api/models?type=loras&limit=10&offset=10")
    assert paths(page) == [f"loras/m{i:02d}.safetensors" for i in range(10, 20)]
    assert page["total"] == 25 and page["total_size_bytes"] == sum(100 + i for i in range(25))
    assert page["limit"] == 10 and page["offset"] == 10
    beyond = await call(client, "GET", "/api/models?offset=1000")
    assert beyond["models"] == [] and beyond["total"] == 27

    by_size = await call(client, "GET", "/api/models?sort=size&order=desc&limit=3")
    assert paths(by_size) == ["loras/m24.safetensors", "loras/m23.safetensors", "loras/m22.safetensors"]
    smallest = await call(client, "GET", "/api/models?sort=size&limit=2")
    assert paths(smallest) == ["checkpoints/B_model.safetensors", "vae/a_model.safetensors"]
    by_name = await call(client, "GET", "/api/models?sort=name&limit=2")
    assert paths(by_name) == ["vae/a_model.safetensors", "checkpoints/B_model.safetensors"]
    by_path_desc = await call(client, "GET", "/api/models?order=desc&limit=1")
    assert paths(by_path_desc) == ["vae/a_model.safetensors"]
    oldest = await call(client, "GET", "/api/models?type=loras&sort=modified&limit=4")
    assert [m["modified"] for m in oldest["models"]] == ["2026-02-15T09:54:00Z"] * 3 + ["2026-02-15T09:55:00Z"]
    assert paths(oldest)[:3] == ["loras/m06.safetensors", "loras/m13.safetensors", "loras/m20.safetensors"]


async def test_preset_is_the_first_installed_owner_by_id(client, settings):
    fresh(client)
    user = settings.data_dir / "presets"
    user.mkdir()
    for preset_id, extra in (("AAA_MINE", "loras/aaa_only.safetensors"), ("ZZZ_MINE", None)):
        files = "".join(f"  - path: {p}\n    url: https://example.com/{p}\n    size: 16\n"
                        for p in ["loras/shared.safetensors", *([extra] if extra else [])])
        (user / f"{preset_id}.yaml").write_text(
            f"id: {preset_id}\nname: {preset_id}\ncategory: Image Generation\ntype: image\nfiles:\n{files}")
    for path in [*WAN_FILES, "loras/shared.safetensors", "loras/stray.safetensors"]:
        put_model(settings.models_dir, path)

    def owners(body) -> dict[str, str | None]:
        return {m["path"]: m["preset"] for m in body["models"]}

    body = owners(await call(client, "GET", "/api/models"))
    assert {p: body[p] for p in WAN_FILES} == dict.fromkeys(WAN_FILES, WAN)
    assert body["loras/shared.safetensors"] == "ZZZ_MINE"  # AAA_MINE lacks a file: not installed
    assert body["loras/stray.safetensors"] is None
    put_model(settings.models_dir, "loras/aaa_only.safetensors")
    body = owners(await call(client, "GET", "/api/models"))
    assert body["loras/shared.safetensors"] == "AAA_MINE" and body["loras/aaa_only.safetensors"] == "AAA_MINE"
    (settings.models_dir / WAN_FILES[2]).unlink()  # WAN is no longer installed: its files are nobody's
    body = owners(await call(client, "GET", "/api/models"))
    assert body[WAN_FILES[0]] is None and body[WAN_FILES[1]] is None


async def test_types_list_every_folder_with_counts_including_zero(client, settings):
    for path in ("checkpoints/a.safetensors", "checkpoints/sub/b.ckpt", "loras/c.safetensors", "clip/d.pt"):
        put_model(settings.models_dir, path)
    body = await call(client, "GET", "/api/models/types")
    types = {t["id"]: t for t in body["types"]}
    assert [t["id"] for t in body["types"]][:4] == ["checkpoints", "configs", "loras", "vae"]
    assert types["checkpoints"] == {"id": "checkpoints", "name": "Checkpoints", "count": 2, "size_gb": 0.0,
                                    "size_bytes": 32}
    assert types["loras"]["name"] == "LoRAs" and types["loras"]["count"] == 1
    assert types["text_encoders"]["count"] == 1 and types["vae"]["count"] == 0
    assert "unet" not in types and "clip" not in types
    assert all(t["count"] == 0 for t in body["types"] if t["id"] not in ("checkpoints", "loras", "text_encoders"))


async def test_extra_model_paths_add_folders_and_types(make_client, settings, tmp_path):
    store = tmp_path / "store"
    yaml_file = tmp_path / "extra.yaml"
    yaml_file.write_text(f"shared:\n  base_path: {store}\n  loras: |\n    lora\n    lyco\n"
                         f"  ip_adapter: ipadapter\n")
    put_model(store, "lora/from_yaml.safetensors")
    put_model(store, "lyco/second.safetensors")
    put_model(store, "ipadapter/ip.bin")
    put_model(settings.models_dir, "loras/local.safetensors")
    client = await make_client(extra_model_paths=yaml_file)
    listed = await call(client, "GET", "/api/models")
    assert paths(listed) == ["ip_adapter/ip.bin", "loras/from_yaml.safetensors", "loras/local.safetensors",
                             "loras/second.safetensors"]
    types = {t["id"]: t for t in (await call(client, "GET", "/api/models/types"))["types"]}
    assert types["ip_adapter"] == {"id": "ip_adapter", "name": "Ip Adapter", "count": 1, "size_gb": 0.0,
                                   "size_bytes": 16}
    assert (await delete(client, {"paths": ["loras/second.safetensors"]}))["deleted"] == 1
    assert not (store / "lyco/second.safetensors").exists()


# symlinks, vanishing files, unreadable folders


async def test_symlinks_inside_are_listed_and_loops_end(client, settings, tmp_path):
    models = settings.models_dir
    real = put_model(models, "checkpoints/real/model.safetensors")
    (models / "checkpoints" / "alias.safetensors").symlink_to(real)
    (models / "loras" / "linked_dir").symlink_to(models / "checkpoints" / "real", target_is_directory=True)
    (models / "checkpoints" / "real" / "loop").symlink_to(models / "checkpoints", target_is_directory=True)
    (models / "checkpoints" / "dangling.safetensors").symlink_to(tmp_path / "gone.safetensors")
    body = await call(client, "GET", "/api/models")
    # Each real folder is listed once per type: checkpoints/real/loop leads back to checkpoints (not
    # again), while loras reaches checkpoints through linked_dir/loop once, and real not a second time.
    assert paths(body) == ["checkpoints/alias.safetensors", "checkpoints/real/model.safetensors",
                           "loras/linked_dir/loop/alias.safetensors", "loras/linked_dir/model.safetensors"]
    assert body["problems"] == []


async def test_files_vanishing_mid_scan_are_skipped(client, settings, monkeypatch):
    models = settings.models_dir
    put_model(models, "loras/stays.safetensors")
    put_model(models, "loras/goes.safetensors")
    put_model(models, "loras/sub/gone_with_folder.safetensors")

    class ListThenDelete:
        """os.scandir that lists the folder, then deletes a file and a folder before they are looked at."""

        def __init__(self, listed="."):
            self._entries = list(REAL_SCANDIR(listed))
            if same_dir(listed, models / "loras"):
                (models / "loras" / "goes.safetensors").unlink()
                (models / "loras" / "sub" / "gone_with_folder.safetensors").unlink()
                (models / "loras" / "sub").rmdir()

        def __enter__(self):
            return iter(self._entries)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(model_index.os, "scandir", ListThenDelete)
    body = await call(client, "GET", "/api/models?type=loras")
    assert paths(body) == ["loras/stays.safetensors"]
    assert body["problems"] == []


async def test_folder_deleted_after_listing(client, settings):
    fresh(client)
    put_model(settings.models_dir, "loras/pack/a.safetensors")
    put_model(settings.models_dir, "loras/keep.safetensors")
    assert len((await call(client, "GET", "/api/models"))["models"]) == 2
    shutil.rmtree(settings.models_dir / "loras" / "pack")
    body = await call(client, "GET", "/api/models")
    assert paths(body) == ["loras/keep.safetensors"] and body["problems"] == []
    result = await delete(client, {"paths": ["loras/pack/a.safetensors"]})
    assert result["deleted"] == 0 and result["errors"][0]["code"] == "MODEL_NOT_FOUND"
    shutil.rmtree(settings.models_dir / "loras")  # even a whole root
    assert (await call(client, "GET", "/api/models"))["total"] == 0


async def test_unreadable_folder_is_reported_not_fatal(client, settings, monkeypatch):
    # Tests may run as root, where chmod 000 does not deny reads: make os.scandir refuse instead.
    locked = settings.models_dir / "loras" / "locked"
    put_model(settings.models_dir, "loras/locked/secret.safetensors")
    put_model(settings.models_dir, "loras/open.safetensors")

    def scandir(listed="."):
        if same_dir(listed, locked):
            raise PermissionError(13, "Permission denied", str(listed))
        return REAL_SCANDIR(listed)

    monkeypatch.setattr(model_index.os, "scandir", scandir)
    body = await call(client, "GET", "/api/models")
    assert paths(body) == ["loras/open.safetensors"]
    assert body["problems"] == [{"path": str(locked), "error": "Permission denied"}]


# deleting


async def test_deletes_files_and_reports_space_freed(client, settings):
    fresh(client)
    put_model(settings.models_dir, "checkpoints/old_model.safetensors", size=1000)
    put_model(settings.models_dir, "loras/sub/unused_lora.safetensors", size=24)
    body = await delete(client, {"paths": ["checkpoints/old_model.safetensors", "loras/sub/unused_lora.safetensors"]})
    assert body == {"deleted": 2, "space_freed_gb": 0.0, "space_freed_bytes": 1024, "errors": []}
    assert not (settings.models_dir / "checkpoints/old_model.safetensors").exists()
    assert (settings.models_dir / "loras/sub").is_dir()  # folders stay
    assert (await call(client, "GET", "/api/models"))["total"] == 0


async def test_deleted_files_disappear_from_the_listing_at_once(client, settings):
    # No fresh(): the index's one-second throttle must not hide a deletion made through the API.
    put_model(settings.models_dir, "vae/a.safetensors")
    put_model(settings.models_dir, "vae/b.safetensors")
    assert (await call(client, "GET", "/api/models"))["total"] == 2
    assert (await delete(client, {"paths": ["vae/a.safetensors"]}))["deleted"] == 1
    assert paths(await call(client, "GET", "/api/models")) == ["vae/b.safetensors"]
    assert (await call(client, "GET", "/api/system/storage"))["models"]["count"] == 1


async def test_legacy_folder_names_are_accepted(client, settings):
    target = put_model(settings.models_dir, "unet/flux.safetensors")
    body = await delete(client, {"paths": ["unet/flux.safetensors"]})
    assert body["deleted"] == 1 and not target.exists()


@pytest.mark.parametrize(("path", "code"), [
    ("checkpoints/missing.safetensors", "MODEL_NOT_FOUND"),
    ("checkpoints/../../outside.safetensors", "INVALID_REQUEST"),
    ("../outside.safetensors", "INVALID_REQUEST"),
    ("checkpoints/./x.safetensors", "INVALID_REQUEST"),
    ("checkpoints//x.safetensors", "INVALID_REQUEST"),
    ("/etc/outside.safetensors", "INVALID_REQUEST"),
    ("C:/outside.safetensors", "INVALID_REQUEST"),
    ("checkpoints\\..\\..\\outside.safetensors", "INVALID_REQUEST"),
    ("checkpoints", "INVALID_REQUEST"),
    ("checkpoints/", "INVALID_REQUEST"),
    ("secrets/x.safetensors", "INVALID_REQUEST"),
    ("checkpoints/folder.safetensors", "INVALID_REQUEST"),
    ("checkpoints/notes.txt", "INVALID_REQUEST"),
    ("checkpoints/partial.safetensors.part", "INVALID_REQUEST"),
    ("checkpoints/\ud800.safetensors", "INVALID_REQUEST"),
    ("checkpoints/nul\0.safetensors", "INVALID_REQUEST"),
])
async def test_refused_paths_touch_nothing(client, settings, tmp_path, path, code):
    outside = put_model(tmp_path, "outside.safetensors")
    (settings.models_dir / "checkpoints" / "folder.safetensors").mkdir()
    put_model(settings.models_dir, "checkpoints/folder.safetensors/inner.safetensors")
    put_model(settings.models_dir, "checkpoints/notes.txt")
    put_model(settings.models_dir, "checkpoints/partial.safetensors.part")
    before = sorted(p for p in settings.models_dir.rglob("*"))
    body = await delete(client, {"paths": [path]})
    assert body["deleted"] == 0 and body["space_freed_gb"] == 0
    assert len(body["errors"]) == 1
    assert body["errors"][0]["path"] == path and body["errors"][0]["code"] == code
    assert body["errors"][0]["message"]
    assert outside.exists() and sorted(settings.models_dir.rglob("*")) == before


async def test_symlinks_escaping_the_model_folders_are_never_deleted(client, settings, tmp_path):
    outside = put_model(tmp_path, "elsewhere/precious.safetensors", size=64)
    (settings.models_dir / "loras" / "link.safetensors").symlink_to(outside)
    (settings.models_dir / "checkpoints" / "outdir").symlink_to(outside.parent, target_is_directory=True)
    listed = paths(await call(client, "GET", "/api/models"))
    assert "loras/link.safetensors" in listed  # listed: it is what ComfyUI would load
    body = await delete(client, {"paths": ["loras/link.safetensors", "checkpoints/outdir/precious.safetensors"]})
    assert body["deleted"] == 0
    assert [(e["path"], e["code"]) for e in body["errors"]] == [
        ("loras/link.safetensors", "INVALID_REQUEST"), ("checkpoints/outdir/precious.safetensors", "INVALID_REQUEST")]
    assert outside.read_bytes() == b"x" * 64
    assert (settings.models_dir / "loras" / "link.safetensors").is_symlink()


async def test_a_symlink_inside_is_removed_not_its_target(client, settings):
    real = put_model(settings.models_dir, "checkpoints/real.safetensors", size=64)
    (settings.models_dir / "loras" / "alias.safetensors").symlink_to(real)
    body = await delete(client, {"paths": ["loras/alias.safetensors"]})
    assert body == {"deleted": 1, "space_freed_gb": 0.0, "space_freed_bytes": 0, "errors": []}
    assert real.exists() and not (settings.models_dir / "loras" / "alias.safetensors").is_symlink()


class QueueBackend(ComfyBackend):
    """A ComfyUI whose queue runs one prompt and has one pending."""

    kind = "fake"

    def __init__(self) -> None:
        self.forgotten: list[str] = []

    async def queue(self):
        def prompt(inputs):
            return {"1": {"class_type": "Loader", "inputs": inputs},
                    "2": {"class_type": "Save", "inputs": {"images": ["1", 0]}}}

        return {
            "running": [{"prompt_id": "r", "number": 1, "workflow": prompt({"ckpt_name": "sub\\running.safetensors"})}],
            "pending": [{"prompt_id": "p", "number": 2, "workflow": prompt({"lora_name": "queued.safetensors",
                                                                            "strength": 1.0})}],
        }

    def forget_model_folder(self, folder_type: str) -> None:
        self.forgotten.append(folder_type)


async def test_models_used_by_the_queue_are_kept_unless_forced(make_client, settings):
    backend = QueueBackend()
    client = await make_client(backend=backend)
    running = put_model(settings.models_dir, "checkpoints/sub/running.safetensors")
    queued = put_model(settings.models_dir, "loras/deep/queued.safetensors")  # named by file name only
    free = put_model(settings.models_dir, "loras/free.safetensors")
    body = await delete(client, {"paths": ["checkpoints/sub/running.safetensors", "loras/deep/queued.safetensors",
                                           "loras/free.safetensors"]})
    assert body["deleted"] == 1 and not free.exists()
    assert [(e["path"], e["code"]) for e in body["errors"]] == [
        ("checkpoints/sub/running.safetensors", "MODEL_IN_USE"), ("loras/deep/queued.safetensors", "MODEL_IN_USE")]
    assert running.exists() and queued.exists()
    assert backend.forgotten == ["loras"]
    forced = await delete(client, {"paths": ["checkpoints/sub/running.safetensors", "loras/deep/queued.safetensors"],
                                   "force": True})
    assert forced["deleted"] == 2 and forced["errors"] == []
    assert not running.exists() and not queued.exists()
    assert backend.forgotten == ["loras", "checkpoints", "loras"]



async def test_uninstalling_a_preset_that_a_prompt_uses_needs_force(make_client, settings):
    client = await make_client(backend=QueueBackend())
    running = put_model(settings.models_dir, "checkpoints/sub/running.safetensors")
    free = put_model(settings.models_dir, "vae/free.safetensors")
    write_preset(settings, "BUSY", [
        {"path": "checkpoints/sub/running.safetensors", "repo": "org/busy", "file": "running.safetensors", "size": 16},
        {"path": "vae/free.safetensors", "repo": "org/busy", "file": "free.safetensors", "size": 16}])
    response = await client.delete("/api/presets/BUSY")
    body = await response.json()
    assert response.status == 409 and body["error"]["code"] == "MODEL_IN_USE"
    assert body["error"]["details"]["paths"] == ["checkpoints/sub/running.safetensors"]
    assert running.exists() and free.exists()
    response = await client.delete("/api/presets/BUSY?force=true")
    assert response.status == 200 and (await response.json())["files_removed"] == 2
    assert not running.exists() and not free.exists()

async def test_mixed_batch_reports_each_failure_once_in_request_order(client, settings, tmp_path):
    put_model(settings.models_dir, "vae/ok1.safetensors", size=10)
    put_model(settings.models_dir, "vae/ok2.safetensors", size=20)
    body = await delete(client, {"paths": ["vae/missing.safetensors", "vae/ok1.safetensors", "../../etc/passwd",
                                           "vae/ok2.safetensors", "vae/ok1.safetensors", "vae"]})
    assert body["deleted"] == 2 and body["space_freed_bytes"] == 30
    assert [(e["path"], e["code"]) for e in body["errors"]] == [
        ("vae/missing.safetensors", "MODEL_NOT_FOUND"), ("../../etc/passwd", "INVALID_REQUEST"),
        ("vae", "INVALID_REQUEST")]


async def test_deleting_a_preset_file_uninstalls_the_preset(client, settings):
    for path in WAN_FILES:
        put_model(settings.models_dir, path)
    assert (await call(client, "GET", f"/api/presets/{WAN}/status"))["status"] == "installed"
    await delete(client, {"paths": [WAN_FILES[0]]})
    assert (await call(client, "GET", f"/api/presets/{WAN}/status"))["status"] == "partial"


@pytest.mark.parametrize("body", [
    {}, {"paths": []}, {"paths": "checkpoints/a.safetensors"}, {"paths": [3]}, {"paths": [""]},
    {"paths": ["a"] * 1001}, {"paths": ["vae/a.safetensors"], "force": "yes"},
    {"paths": ["vae/a.safetensors"], "extra": 1}, [], "paths",
])
async def test_invalid_delete_bodies_are_rejected_whole(client, settings, body):
    target = put_model(settings.models_dir, "vae/a.safetensors")
    answer = await delete(client, body, status=400)
    assert answer["error"]["code"] == "INVALID_REQUEST"
    assert target.exists()


async def test_body_that_is_not_json_is_rejected(client):
    response = await client.delete("/api/models", data=b"{paths", headers={"Content-Type": "application/json"})
    assert response.status == 400


# storage


async def test_storage_reports_the_models_volume_and_counts(client, settings):
    put_model(settings.models_dir, "checkpoints/a.safetensors", size=10)
    put_model(settings.models_dir, "loras/b.safetensors", size=20)
    put_model(settings.models_dir, "loras/c.safetensors", size=30)
    body = await call(client, "GET", "/api/system/storage")
    workspace = body["workspace"]
    assert workspace["path"] == str(settings.models_dir)
    assert workspace["total_gb"] > 0 and 0 <= workspace["usage_percent"] <= 100
    assert workspace["used_gb"] <= workspace["total_gb"] and workspace["available_gb"] <= workspace["total_gb"]
    models = body["models"]
    assert models["count"] == 3 and models["total_size_bytes"] == 60 and models["total_size_gb"] == 0.0
    assert models["by_type"]["checkpoints"] == 1 and models["by_type"]["loras"] == 2
    assert models["by_type"]["vae"] == 0


# scale and caching


async def test_ten_thousand_files(client, settings):
    for folder in range(10):
        directory = settings.models_dir / "loras" / f"pack{folder}"
        directory.mkdir(parents=True)
        for i in range(1005):
            (directory / f"f{i:04d}.safetensors").touch()
    body = await call(client, "GET", "/api/models?limit=10000")
    assert body["total"] == 10_050 and len(body["models"]) == 10_000
    assert body["models"][0]["path"] == "loras/pack0/f0000.safetensors"
    rest = await call(client, "GET", "/api/models?limit=10000&offset=10000")
    assert paths(rest) == [f"loras/pack9/f{i:04d}.safetensors" for i in range(955, 1005)]
    types = {t["id"]: t["count"] for t in (await call(client, "GET", "/api/models/types"))["types"]}
    assert types["loras"] == 10_050
    searched = await call(client, "GET", "/api/models?search=pack3/f099")
    assert searched["total"] == 10


def _age_directories(root: Path, seconds: float = 3600) -> None:
    """Give every directory an mtime in the past, so the index trusts it (it re-lists recent ones)."""
    past = os.stat(root).st_mtime - seconds
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.utime(directory, (past, past))


class CountingScandir:
    """Records which directories os.scandir lists."""

    def __init__(self, monkeypatch) -> None:
        self.listed: list = []

        def scandir(listed="."):
            self.listed.append(REAL_STAT(listed))
            return REAL_SCANDIR(listed)

        monkeypatch.setattr(model_index.os, "scandir", scandir)

    def under(self, folder: Path) -> list[Path]:
        """The listed directories that are `folder` or inside it."""
        listed = list(self.listed)  # before rglob, which lists directories too
        folders = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
        return [d for info in listed for d in folders if os.path.samestat(info, REAL_STAT(d))]


async def test_repeated_listing_does_not_walk_the_disk(client, settings, monkeypatch):
    for i in range(50):
        put_model(settings.models_dir, f"loras/p{i % 5}/m{i}.safetensors")
    client.app[SERVICES].index.max_age = 3600
    await client.app[SERVICES].system.stop()  # its disk reading stats the models folder too: not counted here
    first = await call(client, "GET", "/api/models")
    scans = CountingScandir(monkeypatch)
    stats: list[str] = []
    monkeypatch.setattr(model_index.os, "stat", lambda p, *a, **k: stats.append(str(p)) or REAL_STAT(p, *a, **k))
    for _ in range(3):
        assert await call(client, "GET", "/api/models") == first
    assert [p for p in stats if p.startswith(str(settings.models_dir))] == []
    assert scans.under(settings.models_dir) == []


async def test_refresh_relists_only_changed_directories(tmp_path, monkeypatch):
    root = tmp_path / "loras"
    for i in range(6):
        put_model(root, f"p{i}/m.safetensors")
    _age_directories(root)
    index = ModelIndex({"loras": [root]}, max_age=0)
    await index.refresh()
    version = index.version
    scans = CountingScandir(monkeypatch)
    await index.refresh()
    assert scans.listed == [] and index.version == version  # one stat per directory, no listing
    put_model(root, "p3/new.safetensors")
    await index.refresh()
    assert scans.under(root) == [root / "p3"] and index.version == version + 1
    assert sorted(index.files()) == sorted([f"loras/p{i}/m.safetensors" for i in range(6)] +
                                           ["loras/p3/new.safetensors"])


async def test_change_within_the_same_mtime_tick_is_seen(tmp_path):
    # A coarse file-system clock can give a folder the same mtime before and after a change; a
    # directory modified this recently is listed again on the next refresh.
    root = tmp_path / "vae"
    put_model(root, "a.safetensors")
    index = ModelIndex({"vae": [root]}, max_age=0)
    await index.refresh()
    mtime = os.stat(root).st_mtime_ns
    put_model(root, "b.safetensors")
    os.utime(root, ns=(mtime, mtime))
    await index.refresh()
    assert sorted(index.files()) == ["vae/a.safetensors", "vae/b.safetensors"]
    version = index.version
    await index.refresh()  # listed again, nothing new: the version stays
    assert index.version == version
