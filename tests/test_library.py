"""The model library: hashes kept across restarts, duplicates (an extra path included) and their
cleanup, usage per prompt (ComfyUI stand-in), header metadata, Civitai's by-hash lookup, and Hub
updates that keep the old file until the new one is verified."""

from __future__ import annotations

import asyncio
import json
import os
import struct

import pytest
from civitai import PNG, FakeCivitai, running_civitai
from comfyui_standin import Worker, install
from downloads_support import FAST_RETRY, Events, sha256_of, write_preset
from support import call, put_model, until

from dashboard.api.context import SERVICES
from dashboard.comfy.inprocess import InProcessBackend

MB = 1024 * 1024


@pytest.fixture
def app(make_client, hub):
    async def start(backend=None, **changes):
        client = await make_client(backend, hf_endpoint=hub.url, **changes)
        client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
        return client

    return start


async def scanned(client) -> dict:
    """Start a scan and wait until it is idle; the status."""
    await call(client, "POST", "/api/library/scan", 202)

    async def idle():
        status = await call(client, "GET", "/api/library/status")
        return status if status["status"] == "idle" else None

    return await until(idle, timeout=60, what="the library scan to finish", interval=0.02)


def same_bytes(*targets, size=MB) -> bytes:
    data = os.urandom(size)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return data


def safetensors(target, metadata: dict) -> None:
    header = json.dumps({"__metadata__": metadata, "w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0\0")


async def test_duplicates_across_an_extra_path_and_a_cleanup_that_keeps_one(app, settings, tmp_path):
    extra = tmp_path / "extra"
    (tmp_path / "extra_model_paths.yaml").write_text(f"mine:\n  base_path: {extra}\n  loras: loras\n")
    models = settings.models_dir
    same_bytes(models / "loras" / "style.safetensors", extra / "loras" / "copies" / "style (1).safetensors",
               models / "checkpoints" / "misplaced.safetensors")
    put_model(models, "loras/unique.safetensors", size=100)
    client = await app(extra_model_paths=tmp_path / "extra_model_paths.yaml")
    status = await scanned(client)
    assert status["files_hashed"] == status["files_total"] == 4 and status["bytes_hashed"] == 3 * MB + 100

    body = await call(client, "GET", "/api/models?duplicates=true")
    (group,) = body["groups"]
    assert [f["path"] for f in group["files"]] == ["loras/style.safetensors", "checkpoints/misplaced.safetensors",
                                                   "loras/copies/style (1).safetensors"]
    assert [f["keep"] for f in group["files"]] == [True, False, False]
    assert group["size_bytes"] == MB and group["reclaimable_bytes"] == body["reclaimable_bytes"] == 2 * MB
    assert [m["path"] for m in body["models"]] == [f["path"] for f in group["files"]]
    assert len({m["sha256"] for m in body["models"]}) == 1 and body["total_size_bytes"] == 3 * MB

    dry = await call(client, "POST", "/api/models/duplicates/remove", json={"dry_run": True})
    assert dry["space_freed_bytes"] == 2 * MB and dry["deleted"] == 0 and dry["kept"] == ["loras/style.safetensors"]
    assert (extra / "loras" / "copies" / "style (1).safetensors").exists()
    done = await call(client, "POST", "/api/models/duplicates/remove", json={
        "sha256": [group["sha256"]], "keep": {group["sha256"]: "checkpoints/misplaced.safetensors"}})
    assert done["deleted"] == 2 and done["space_freed_bytes"] == 2 * MB and done["errors"] == []
    assert (models / "checkpoints" / "misplaced.safetensors").exists()
    assert not (models / "loras" / "style.safetensors").exists()
    assert not (extra / "loras" / "copies" / "style (1).safetensors").exists()
    assert (models / "loras" / "unique.safetensors").exists()


async def test_a_copy_a_preset_lists_is_kept_unless_forced(app, settings):
    models = settings.models_dir
    same_bytes(models / "loras" / "theirs.safetensors", models / "loras" / "zz" / "mine.safetensors")
    write_preset(settings, "OWNER", [{"path": "loras/zz/mine.safetensors", "repo": "org/x", "file": "mine.safetensors",
                                      "size": MB}])
    client = await app()
    await scanned(client)
    (group,) = (await call(client, "GET", "/api/models?duplicates=true"))["groups"]
    assert group["files"][0] == {"path": "loras/zz/mine.safetensors", "presets": ["OWNER"], "keep": True}
    kept = await call(client, "POST", "/api/models/duplicates/remove", json={
        "keep": {group["sha256"]: "loras/theirs.safetensors"}})
    assert kept["deleted"] == 0 and sorted(kept["kept"]) == ["loras/theirs.safetensors", "loras/zz/mine.safetensors"]
    forced = await call(client, "POST", "/api/models/duplicates/remove", json={
        "keep": {group["sha256"]: "loras/theirs.safetensors"}, "force": True})
    assert forced["deleted"] == 1 and not (models / "loras" / "zz" / "mine.safetensors").exists()


async def test_hashes_survive_a_restart_and_a_changed_file_is_hashed_again(app, make_client, settings, hub):
    target = put_model(settings.models_dir, "vae/v.safetensors", size=MB)
    client = await app()
    await scanned(client)
    first = (await call(client, "GET", "/api/models/vae/v.safetensors/info"))["sha256"]
    assert first == sha256_of(target)
    await client.close()

    # new bytes, same size, same mtime, same inode: a restarted dashboard trusts what it hashed
    stat = target.stat()
    with open(target, "r+b") as handle:
        handle.write(b"changed!")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    client = await app()
    await scanned(client)
    assert (await call(client, "GET", "/api/models/vae/v.safetensors/info"))["sha256"] == first
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # now it changed as far as anyone can tell
    await scanned(client)
    assert (await call(client, "GET", "/api/models/vae/v.safetensors/info"))["sha256"] == sha256_of(target) != first


async def test_a_downloaded_file_reuses_its_verified_hash_and_scanning_waits_for_prompts(app, settings, hub):
    hub_file = hub.add_file("org/lib", "lib.safetensors", size=2 * MB)
    write_preset(settings, "LIB", [{"path": "loras/lib.safetensors", "repo": "org/lib", "file": "lib.safetensors",
                                    "size": 2 * MB}])
    client = await app()
    events = Events(client)
    answer = await call(client, "POST", "/api/presets/LIB/install", 202, json={})
    await events.wait("download_complete", lambda d: d["download_id"] == answer["download_id"])
    big = put_model(settings.models_dir, "checkpoints/big.safetensors", size=40 * MB)
    bus = client.app[SERVICES].bus
    bus.publish("queue_update", {"queue_pending": 0, "queue_running": 1, "current_task": None}, "queue")
    status = await call(client, "POST", "/api/library/scan", 202)
    paused = await until(lambda: _paused(client), what="the scan to wait for the prompt")
    assert paused["status"] == "scanning" and paused["files_hashed"] < paused["files_total"]
    bus.publish("queue_update", {"queue_pending": 0, "queue_running": 0, "current_task": None}, "queue")
    status = await until(lambda: _idle(client), timeout=60, what="the scan to finish")
    assert status["files_hashed"] == 2 and status["paused"] is False
    info = await call(client, "GET", "/api/models/loras/lib.safetensors/info")
    assert info["sha256"] == hub_file.sha256 and info["presets"] == ["LIB"]
    assert info["source"]["repo"] == "org/lib" and info["source"]["kind"] == "huggingface"
    assert (await call(client, "GET", "/api/models/checkpoints/big.safetensors/info"))["sha256"] == sha256_of(big)


async def _paused(client):
    status = await call(client, "GET", "/api/library/status")
    return status if status["paused"] and status["files_total"] == 2 else None


async def _idle(client):
    status = await call(client, "GET", "/api/library/status")
    return status if status["status"] == "idle" else None


async def test_each_prompt_that_runs_counts_the_models_it_loads(app, monkeypatch, tmp_path):
    server = install(monkeypatch, tmp_path / "comfyui", asyncio.get_running_loop())
    models = tmp_path / "comfyui" / "models"  # ComfyUI's model folders
    put_model(models, "checkpoints/used.safetensors")
    put_model(models, "checkpoints/idle.safetensors", size=32)
    old = put_model(models, "loras/old.safetensors")
    os.utime(old, (1_600_000_000, 1_600_000_000))
    client = await app(InProcessBackend(server))
    worker = Worker(server)
    workflow = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "used.safetensors"}}}
    for n in range(2):  # queued from ComfyUI's own UI, not through the dashboard
        server.prompt_queue.put((n, f"editor-{n}", workflow, {"client_id": "browser"}, []))
    for _ in range(2):
        worker.start_next()

        async def counted(expected=_ + 1):
            return (await call(client, "GET", "/api/models/checkpoints/used.safetensors/info"))["use_count"] == expected

        await until(counted, what="the prompt's model counted")
        worker.finish()
    info = await call(client, "GET", "/api/models/checkpoints/used.safetensors/info")
    assert info["use_count"] == 2 and info["last_used"] is not None
    by_use = await call(client, "GET", "/api/models?sort=last_used&order=desc")
    assert by_use["models"][0]["path"] == "checkpoints/used.safetensors" and by_use["models"][0]["use_count"] == 2
    unused = await call(client, "GET", "/api/models?unused_days=30")
    assert [m["path"] for m in unused["models"]] == ["loras/old.safetensors"]  # the others are new or used


async def test_the_header_metadata_of_a_model_without_loading_it(app, settings):
    safetensors(settings.models_dir / "loras" / "styled.safetensors", {
        "modelspec.title": "Watercolor Style", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
        "ss_base_model_version": "sdxl_base_v1-0"})
    client = await app()
    info = await call(client, "GET", "/api/models/loras/styled.safetensors/info")
    assert info["metadata"]["format"] == "safetensors" and info["metadata"]["title"] == "Watercolor Style"
    assert info["metadata"]["base_model"] == "sdxl_base_v1-0"
    assert info["hashed"] is False and info["sha256"] is None  # no scan yet
    assert info["civitai"] is None  # the lookup is off by default: no hash leaves the machine


async def test_civitai_knows_a_hash_or_says_it_does_not(app, settings):
    civitai = FakeCivitai()
    version = civitai.add_version(91, model_id=9, name="known.safetensors", size=MB)
    version.trained_words = ["wtrclr"]
    (settings.models_dir / "loras" / "known.safetensors").write_bytes(version.data)
    put_model(settings.models_dir, "loras/unknown.safetensors")
    with running_civitai(civitai) as url:
        client = await app(civitai_endpoint=url, civitai_lookup=True)
        await scanned(client)
        known = (await call(client, "GET", "/api/models/loras/known.safetensors/info"))["civitai"]
        assert known["found"] is True and known["model_id"] == 9 and known["version_id"] == 91
        assert known["trained_words"] == ["wtrclr"] and known["base_model"] == "SDXL 1.0"
        assert known["preview"] == "api/models/loras/known.safetensors/preview"
        preview = await client.get("/api/models/loras/known.safetensors/preview")
        assert preview.status == 200 and preview.content_type == "image/png" and await preview.read() == PNG
        assert (await call(client, "GET", "/api/models/loras/unknown.safetensors/info"))["civitai"] == {"found": False}
        asked = len(civitai.requests)
        await call(client, "GET", "/api/models/loras/known.safetensors/info")
        assert len(civitai.requests) == asked  # the answer is kept
        missing = await client.get("/api/models/loras/unknown.safetensors/preview")
        assert missing.status == 404 and (await missing.json())["error"]["code"] == "NOT_FOUND"


async def test_a_hub_file_that_changed_is_an_update_that_keeps_the_old_file_until_verified(app, settings, hub):
    hub.add_file("org/up", "up.safetensors", data=b"old" * 100_000)
    write_preset(settings, "UP", [{"path": "loras/up.safetensors", "repo": "org/up", "file": "up.safetensors",
                                   "size": 300_000}])
    client = await app()
    events = Events(client)
    answer = await call(client, "POST", "/api/presets/UP/install", 202, json={})
    await events.wait("download_complete", lambda d: d["download_id"] == answer["download_id"])
    target = settings.models_dir / "loras" / "up.safetensors"
    assert (await call(client, "GET", "/api/models/updates?refresh=true"))["updates"] == []

    newer = hub.add_file("org/up", "up.safetensors", data=b"new" * 120_000)
    updates = (await call(client, "GET", "/api/models/updates?refresh=true"))["updates"]
    assert [(u["path"], u["kind"], u["preset_id"]) for u in updates] == [("loras/up.safetensors", "huggingface", "UP")]
    assert updates[0]["latest"]["sha256"] == newer.sha256 and updates[0]["latest"]["size"] == 360_000
    presets = (await call(client, "GET", "/api/presets"))["presets"]
    assert next(p for p in presets if p["id"] == "UP")["update_available"] is True

    newer.faults.corrupt = True  # the new bytes arrive damaged: the update fails its check
    failed = await call(client, "POST", "/api/models/update", 202, json={"paths": ["loras/up.safetensors"]})
    done = await events.wait("download_complete", lambda d: d["download_id"] == failed["download_id"])
    assert done["status"] == "failed" and target.read_bytes() == b"old" * 100_000
    newer.faults.corrupt = False
    started = await call(client, "POST", "/api/models/update", 202, json={"paths": ["loras/up.safetensors"]})
    done = await events.wait("download_complete", lambda d: d["download_id"] == started["download_id"])
    assert done["status"] == "success" and sha256_of(target) == newer.sha256
    info = await call(client, "GET", "/api/models/loras/up.safetensors/info")
    assert info["presets"] == ["UP"] and info["update"] is None
    assert (await call(client, "GET", "/api/models/updates?refresh=true"))["updates"] == []
    status = await call(client, "GET", "/api/presets/UP/status")
    assert status["status"] == "installed"


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), [
    ("GET", "/api/models/loras/none.safetensors/info", None, 404, "MODEL_NOT_FOUND"),
    ("POST", "/api/models/duplicates/remove", {"sha256": ["0" * 64]}, 404, "NOT_FOUND"),
    ("POST", "/api/models/duplicates/remove", {"sha256": ["nothex"]}, 400, "INVALID_REQUEST"),
    ("POST", "/api/models/duplicates/remove", {"keep": {"x": 1}}, 400, "INVALID_REQUEST"),
    ("POST", "/api/models/update", {"paths": ["loras/none.safetensors"]}, 404, "NOT_FOUND"),
    ("POST", "/api/models/update", {"paths": []}, 400, "INVALID_REQUEST"),
    ("GET", "/api/models?unused_days=-1", None, 400, "INVALID_REQUEST"),
    ("GET", "/api/models?duplicates=maybe", None, 400, "INVALID_REQUEST"),
])
async def test_bad_input_is_refused_with_its_code(app, method, url, body, status, code):
    client = await app()
    response = await client.request(method, url, json=body)
    assert response.status == status and (await response.json())["error"]["code"] == code


async def test_a_newer_civitai_version_is_an_update_saved_under_the_same_name(app, settings):
    civitai = FakeCivitai()
    civitai.add_version(100, model_id=5, name="style_v1.safetensors", size=MB)
    with running_civitai(civitai) as url:
        client = await app(civitai_endpoint=url)
        events = Events(client)
        answer = await call(client, "POST", "/api/models/download", 202, json={
            "url": f"{url}/api/download/models/100", "type": "loras"})
        await events.wait("download_complete", lambda d: d["download_id"] == answer["download_id"])
        assert (await call(client, "GET", "/api/models/updates?refresh=true"))["updates"] == []
        newer = civitai.add_version(101, model_id=5, name="style_v2.safetensors", size=MB)
        (update,) = (await call(client, "GET", "/api/models/updates?refresh=true"))["updates"]
        assert update["path"] == "loras/style_v1.safetensors" and update["kind"] == "civitai"
        assert update["current"] == {"version_id": 100} and update["latest"]["version_id"] == 101
        started = await call(client, "POST", "/api/models/update", 202, json={"paths": [update["path"]]})
        done = await events.wait("download_complete", lambda d: d["download_id"] == started["download_id"])
        assert done["status"] == "success" and done["paths"] == ["loras/style_v1.safetensors"]
        assert sha256_of(settings.models_dir / "loras" / "style_v1.safetensors") == newer.sha256
        assert (await call(client, "GET", "/api/models/updates"))["updates"] == []
