"""Installing presets from a protocol-faithful local hub: verified, resumable, pausable, safe."""

from __future__ import annotations

import asyncio
import shutil

import pytest
from downloads_support import FAST_RETRY, Events, sha256_of, write_preset

from dashboard.api.context import SERVICES

MB = 1024 * 1024


@pytest.fixture
def dl(make_client, settings, hub):
    """Start an app that downloads from the hub; returns (client, events)."""

    async def start(**changes):
        client = await make_client(hf_endpoint=hub.url, **changes)
        services = client.app[SERVICES]
        services.downloads.transfer.retry = FAST_RETRY
        services.catalogue.max_age = 0
        return client, Events(client)

    return start


def one_file_preset(settings, hub, preset_id="TINY", size=3 * MB, name="tiny.safetensors", **file_options):
    hub_file = hub.add_file("org/tiny", f"weights/{name}", size=size, **file_options)
    write_preset(settings, preset_id, [{"path": f"loras/{name}", "repo": "org/tiny", "file": f"weights/{name}",
                                        "size": size}])
    return hub_file


def gets(hub, hub_file):
    return [r for r in hub.requests if r.method == "GET" and r.path.endswith(hub_file.path.split("/")[-1])]


async def install(client, preset_id, status=202, **body):
    response = await client.post(f"/api/presets/{preset_id}/install", json=body)
    assert response.status == status, await response.text()
    return await response.json()


async def test_install_downloads_verifies_and_places_the_file(dl, settings, hub):
    hub_file = one_file_preset(settings, hub)
    client, events = await dl()
    answer = await install(client, "TINY")
    assert answer["status"] == "installing" and answer["download_id"].startswith("dl_")
    assert answer["total_size_gb"] == 0.0
    done = await events.wait("download_complete")
    assert done == {"download_id": answer["download_id"], "preset_id": "TINY", "status": "success",
                    "paths": ["loras/tiny.safetensors"], "time_taken_seconds": done["time_taken_seconds"]}
    target = settings.models_dir / "loras" / "tiny.safetensors"
    assert sha256_of(target) == hub_file.sha256
    assert not list(target.parent.glob("*.part*"))
    status = await (await client.get("/api/presets/TINY/status")).json()
    assert status["status"] == "installed" and status["progress"] == 100
    listing = await (await client.get("/api/downloads")).json()
    assert listing["downloads"][0]["status"] == "completed" and listing["downloads"][0]["progress"] == 100
    assert any(e.type == "download_progress" for e in events.seen)
    again = await install(client, "TINY", status=409)
    assert again["error"]["code"] == "PRESET_ALREADY_INSTALLED"


async def test_pause_keeps_the_part_and_resume_continues_with_range(dl, settings, hub):
    hub_file = one_file_preset(settings, hub, size=8 * MB)
    hub_file.faults.throttle_bps = 2 * MB
    client, events = await dl()
    download_id = (await install(client, "TINY"))["download_id"]
    await events.wait("download_progress", lambda d: d["progress"] > 0)
    response = await client.post(f"/api/downloads/{download_id}/pause")
    assert (await response.json()) == {"status": "paused", "download_id": download_id}
    part = settings.models_dir / "loras" / "tiny.safetensors.part"
    assert part.stat().st_size > 0
    assert not (settings.models_dir / "loras" / "tiny.safetensors").exists()
    assert (await (await client.get("/api/presets/TINY/status")).json())["status"] == "paused"
    kept = part.stat().st_size
    before = len(gets(hub, hub_file))
    hub_file.faults.throttle_bps = None
    response = await client.post(f"/api/downloads/{download_id}/resume")
    assert (await response.json())["status"] == "downloading"
    assert (await events.wait("download_complete"))["status"] == "success"
    assert sha256_of(settings.models_dir / "loras" / "tiny.safetensors") == hub_file.sha256
    assert gets(hub, hub_file)[before].range[0] == kept  # the resume asked for what the pause had not kept


async def test_cancel_removes_partial_files(dl, settings, hub):
    hub_file = one_file_preset(settings, hub, size=8 * MB)
    hub_file.faults.throttle_bps = MB
    client, events = await dl()
    download_id = (await install(client, "TINY"))["download_id"]
    await events.wait("download_progress", lambda d: d["progress"] > 0)
    response = await client.delete(f"/api/downloads/{download_id}")
    assert await response.json() == {"status": "cancelled", "download_id": download_id, "files_removed": True}
    assert (await events.wait("download_complete"))["status"] == "cancelled"
    assert list((settings.models_dir / "loras").iterdir()) == []
    response = await client.post(f"/api/downloads/{download_id}/pause")
    assert response.status == 409 and (await response.json())["error"]["code"] == "DOWNLOAD_CONFLICT"


@pytest.mark.parametrize("fault", [
    {"drop_after": 1 * MB + 12345},
    {"status_burst": [503, 503, 502], "retry_after": 0},
    {"rate_limit": 2, "retry_after": 0},
    {"stall_after": 1 * MB},
])
async def test_recovers_from_network_faults(dl, settings, hub, fault):
    hub_file = one_file_preset(settings, hub, size=3 * MB)
    for name, value in fault.items():
        setattr(hub_file.faults, name, value)
    client, events = await dl(read_timeout=0.5)
    await install(client, "TINY")
    assert (await events.wait("download_complete"))["status"] == "success"
    assert sha256_of(settings.models_dir / "loras" / "tiny.safetensors") == hub_file.sha256
    if "drop_after" in fault or "stall_after" in fault:
        assert gets(hub, hub_file)[-1].headers.get("Range", "").startswith("bytes=")


async def test_server_that_ignores_range_still_gives_a_correct_file(dl, settings, hub):
    hub_file = one_file_preset(settings, hub, size=3 * MB)
    hub_file.faults.drop_after = 2 * MB
    hub_file.faults.ignore_range = True
    client, events = await dl()
    await install(client, "TINY")
    assert (await events.wait("download_complete"))["status"] == "success"
    assert sha256_of(settings.models_dir / "loras" / "tiny.safetensors") == hub_file.sha256


async def test_corrupt_bytes_are_fetched_again_then_fail_with_details(dl, settings, hub):
    hub_file = one_file_preset(settings, hub, size=2 * MB)
    hub_file.faults.corrupt = True
    client, events = await dl()
    await install(client, "TINY")
    error = await events.wait("error")
    assert error["code"] == "DOWNLOAD_FAILED"
    assert error["details"]["reason"] == "hash_mismatch" and error["details"]["expected"] == hub_file.sha256
    assert (await events.wait("download_complete"))["status"] == "failed"
    assert len(gets(hub, hub_file)) == 2  # discarded once, fetched again from scratch
    assert list((settings.models_dir / "loras").iterdir()) == []
    status = await (await client.get("/api/presets/TINY/status")).json()
    assert status["status"] == "failed" and status["error"]["details"]["reason"] == "hash_mismatch"


async def test_small_non_lfs_files_are_checked_against_the_git_blob_sha1(dl, settings, hub):
    hub.add_file("org/tiny", "weights/small.safetensors", b"0123456789" * 100, lfs=False)
    write_preset(settings, "SMALL", [{"path": "loras/small.safetensors", "repo": "org/tiny",
                                      "file": "weights/small.safetensors", "size": 1000}])
    client, events = await dl()
    await install(client, "SMALL")
    assert (await events.wait("download_complete"))["status"] == "success"
    assert (settings.models_dir / "loras" / "small.safetensors").read_bytes() == b"0123456789" * 100


async def test_gated_files_say_which_token_to_set(dl, settings, hub):
    one_file_preset(settings, hub, gated=True)
    client, events = await dl()
    await install(client, "TINY")
    error = await events.wait("error")
    assert error["details"]["reason"] == "gated" and error["details"]["token"] == "HF_TOKEN"
    assert "accept its licence" in error["message"] and error["details"]["repo"] == "org/tiny"


async def test_gated_files_download_with_the_token(dl, settings, hub):
    hub_file = one_file_preset(settings, hub, gated=True)
    hub.tokens.add("hf_secret_token")
    client, events = await dl(hf_token="hf_secret_token")
    await install(client, "TINY")
    assert (await events.wait("download_complete"))["status"] == "success"
    assert sha256_of(settings.models_dir / "loras" / "tiny.safetensors") == hub_file.sha256


async def test_missing_file_names_repo_file_and_revision(dl, settings, hub):
    hub.add_file("org/tiny", "weights/other.safetensors", size=10)
    write_preset(settings, "MISSING", [{"path": "loras/gone.safetensors", "repo": "org/tiny",
                                        "file": "weights/gone.safetensors", "size": 10}])
    client, events = await dl()
    await install(client, "MISSING")
    error = await events.wait("error")
    assert error["details"]["reason"] == "file_not_found" and error["details"]["file"] == "loras/gone.safetensors"
    assert error["details"]["repo"] == "org/tiny" and error["details"]["repo_file"] == "weights/gone.safetensors"
    assert error["details"]["revision"] == "main"


async def test_a_failed_file_is_reported_over_the_socket_as_the_spec_says(dl, settings, hub):
    hub.add_file("org/tiny", "weights/other.safetensors", size=10)
    write_preset(settings, "MISSING", [{"path": "loras/gone.safetensors", "repo": "org/tiny",
                                        "file": "weights/gone.safetensors", "size": 10}])
    client, _events = await dl()
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "subscribe", "channels": ["downloads"]})
        while (await socket.receive_json())["type"] != "snapshot":
            pass
        download_id = (await install(client, "MISSING"))["download_id"]
        while (message := await asyncio.wait_for(socket.receive_json(), 60))["type"] != "error":
            pass
    data = message["data"]
    assert data["code"] == "DOWNLOAD_FAILED"
    assert data["details"]["file"] == "loras/gone.safetensors"
    assert data["details"]["error"] == data["message"] and "does not exist" in data["message"]
    assert data["details"]["download_id"] == download_id and data["details"]["preset_id"] == "MISSING"


async def test_not_enough_disk_space_writes_nothing(dl, settings, hub):
    one_file_preset(settings, hub, size=3 * MB)
    write_preset(settings, "HUGE", [{"path": "loras/huge.safetensors", "repo": "org/tiny",
                                     "file": "weights/huge.safetensors", "size": 10**16}])
    client, _events = await dl()
    body = await install(client, "HUGE", status=507)
    assert body["error"]["code"] == "INSUFFICIENT_STORAGE" and body["error"]["details"]["needed_gb"] > 0
    assert list((settings.models_dir / "loras").iterdir()) == []
    assert (await (await client.get("/api/downloads")).json())["total"] == 0


async def test_token_is_not_forwarded_to_the_cdn(dl, settings, hub):
    hub_file = one_file_preset(settings, hub)
    hub.cdn = True
    hub.tokens.add("hf_secret_token")
    client, events = await dl(hf_token="hf_secret_token")
    await install(client, "TINY")
    assert (await events.wait("download_complete"))["status"] == "success"
    cdn_host = hub.cdn_url.split("//")[1]
    to_cdn = [r for r in hub.requests if r.host == cdn_host]
    to_hub = [r for r in hub.requests if r.path == hub_file.url_path]
    assert to_cdn and to_hub
    assert all("Authorization" not in r.headers for r in to_cdn)
    assert all(r.headers.get("Authorization") == "Bearer hf_secret_token" for r in to_hub)


async def test_shared_files_survive_uninstalling_one_preset(dl, settings, hub):
    for name in ("shared", "a", "b"):
        hub.add_file("org/tiny", f"{name}.safetensors", size=MB)
    spec = {name: {"path": f"vae/{name}.safetensors", "repo": "org/tiny", "file": f"{name}.safetensors",
                   "size": MB} for name in ("shared", "a", "b")}
    write_preset(settings, "PRESET_A", [spec["shared"], spec["a"]])
    write_preset(settings, "PRESET_B", [spec["shared"], spec["b"]])
    client, events = await dl()
    await install(client, "PRESET_A")
    await events.wait("download_complete")
    await install(client, "PRESET_B")
    await events.wait("download_complete")
    assert len([r for r in hub.requests if r.method == "GET" and "shared" in r.path]) == 1
    response = await client.delete("/api/presets/PRESET_A")
    body = await response.json()
    assert body["files_removed"] == 1 and body["space_freed_gb"] == 0.0
    vae = settings.models_dir / "vae"
    assert sorted(p.name for p in vae.iterdir() if not p.name.endswith(".dashboard.json")) == [
        "b.safetensors", "shared.safetensors"]
    assert (await (await client.get("/api/presets/PRESET_B/status")).json())["status"] == "installed"
    body = await (await client.delete("/api/presets/PRESET_B")).json()
    assert body["files_removed"] == 2
    assert list(vae.iterdir()) == []


async def test_dependencies_are_fetched_first(dl, settings, hub):
    for name in ("base", "addon"):
        hub.add_file("org/tiny", f"{name}.safetensors", size=MB)
    write_preset(settings, "BASE", [{"path": "checkpoints/base.safetensors", "repo": "org/tiny",
                                     "file": "base.safetensors", "size": MB}])
    write_preset(settings, "ADDON", [{"path": "loras/addon.safetensors", "repo": "org/tiny",
                                      "file": "addon.safetensors", "size": MB}], dependencies=("BASE",))
    client, events = await dl(max_downloads=1)
    await install(client, "ADDON")
    await events.wait("download_complete")
    order = [r.path for r in hub.requests if r.method == "GET" and r.path.endswith(".safetensors")]
    assert order[0].endswith("base.safetensors") and order[-1].endswith("addon.safetensors")
    assert (await (await client.get("/api/presets/BASE/status")).json())["status"] == "installed"


async def test_higher_priority_jobs_go_first(dl, settings, hub):
    blocker = one_file_preset(settings, hub, "BLOCKER", size=4 * MB, name="blocker.safetensors")
    blocker.faults.throttle_bps = MB
    one_file_preset(settings, hub, "LOW", size=MB, name="low.safetensors")
    one_file_preset(settings, hub, "HIGH", size=MB, name="high.safetensors")
    client, events = await dl(max_downloads=1)
    blocking = (await install(client, "BLOCKER"))["download_id"]
    await events.wait("download_progress", lambda d: d["progress"] > 0)
    await install(client, "LOW", priority="low")
    await install(client, "HIGH", priority="high")
    listing = await (await client.get("/api/downloads")).json()
    assert [d["preset_id"] for d in listing["downloads"]] == ["HIGH", "BLOCKER", "LOW"]
    blocker.faults.throttle_bps = None
    await client.post(f"/api/downloads/{blocking}/pause")
    first = await events.wait("download_complete")
    assert first["preset_id"] == "HIGH"
    assert (await events.wait("download_complete"))["preset_id"] == "LOW"


async def test_progress_events_are_rate_limited(dl, settings, hub):
    hub_file = one_file_preset(settings, hub, size=6 * MB)
    hub_file.faults.throttle_bps = 4 * MB
    client, events = await dl()
    await install(client, "TINY")
    await events.wait("download_complete")
    progress = [e for e in events.seen if e.type == "download_progress"]
    assert progress and progress[-1].data["progress"] == 100
    assert {"download_id", "preset_id", "progress", "current_file", "speed", "eta", "files"} <= progress[0].data.keys()
    # 1.5 s of transfer at most 4 a second, plus the queued and completed snapshots
    assert len(progress) <= 4 * 2 + 2


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), [
    ("post", "/api/downloads/dl_nope/pause", None, 404, "DOWNLOAD_NOT_FOUND"),
    ("post", "/api/downloads/dl_nope/resume", None, 404, "DOWNLOAD_NOT_FOUND"),
    ("delete", "/api/downloads/dl_nope", None, 404, "DOWNLOAD_NOT_FOUND"),
    ("post", "/api/presets/NOPE/install", {}, 404, "PRESET_NOT_FOUND"),
    ("post", "/api/presets/TINY/install", {"priority": "urgent"}, 400, "INVALID_REQUEST"),
    ("post", "/api/presets/TINY/install", {"force": "yes"}, 400, "INVALID_REQUEST"),
    ("post", "/api/presets/TINY/install", {"colour": "red"}, 400, "INVALID_REQUEST"),
    ("delete", "/api/presets/NOPE", None, 404, "PRESET_NOT_FOUND"),
])
async def test_bad_requests(dl, settings, hub, method, url, body, status, code):
    one_file_preset(settings, hub)
    client, _events = await dl()
    response = await getattr(client, method)(url, json=body)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


async def test_pausing_a_finished_download_is_a_conflict(dl, settings, hub):
    one_file_preset(settings, hub)
    client, events = await dl()
    download_id = (await install(client, "TINY"))["download_id"]
    await events.wait("download_complete")
    response = await client.post(f"/api/downloads/{download_id}/pause")
    assert response.status == 409
    assert (await response.json())["error"]["details"]["status"] == "completed"


async def test_two_clicks_make_one_download(dl, settings, hub):
    hub_file = one_file_preset(settings, hub, size=4 * MB)
    hub_file.faults.throttle_bps = MB
    client, _events = await dl()
    first, second = await asyncio.gather(install(client, "TINY"), install(client, "TINY"))
    assert first["download_id"] == second["download_id"]
    assert (await (await client.get("/api/downloads")).json())["total"] == 1


async def test_installing_a_paused_preset_resumes_it(dl, settings, hub):
    hub_file = one_file_preset(settings, hub, size=4 * MB)
    hub_file.faults.throttle_bps = MB
    client, events = await dl()
    download_id = (await install(client, "TINY"))["download_id"]
    await client.post(f"/api/downloads/{download_id}/pause")
    hub_file.faults.throttle_bps = None
    assert (await install(client, "TINY"))["download_id"] == download_id
    assert (await events.wait("download_complete"))["status"] == "success"


async def test_an_unreachable_hub_is_retried_then_reported(make_client, settings):
    from processes import free_port

    write_preset(settings, "TINY", [{"path": "loras/tiny.safetensors", "repo": "org/tiny", "file": "tiny.safetensors",
                                     "size": MB}])
    client = await make_client(hf_endpoint=f"http://127.0.0.1:{free_port()}")
    client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
    events = Events(client)
    await install(client, "TINY")
    error = await events.wait("error")
    assert error["details"]["reason"] == "network" and "Gave up after" in error["message"]


def link_outside(settings, tmp_path, folder: str = "checkpoints/linkdir"):
    """Make a folder inside the model folders a symlink to an empty one outside them; returns that one."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (settings.models_dir / folder).symlink_to(outside, target_is_directory=True)
    return outside


async def test_a_preset_is_not_installed_through_a_symlinked_folder(dl, settings, hub, tmp_path):
    outside = link_outside(settings, tmp_path)
    hub_file = hub.add_file("org/tiny", "x.safetensors", size=MB)
    write_preset(settings, "LINKED", [{"path": "checkpoints/linkdir/x.safetensors", "repo": "org/tiny",
                                       "file": "x.safetensors", "size": MB}])
    client, _events = await dl()
    body = await install(client, "LINKED", status=400)
    assert body["error"]["code"] == "INVALID_REQUEST"
    assert "outside the model folders" in body["error"]["message"]
    assert body["error"]["details"]["paths"] == ["checkpoints/linkdir/x.safetensors"]
    assert list(outside.iterdir()) == [] and gets(hub, hub_file) == []
    assert (await (await client.get("/api/downloads")).json())["total"] == 0


async def test_uninstall_deletes_nothing_through_a_symlinked_folder(dl, settings, hub, tmp_path):
    outside = link_outside(settings, tmp_path)
    precious = outside / "x.safetensors"
    precious.write_bytes(b"x" * 64)
    own = settings.models_dir / "vae" / "own.safetensors"
    own.write_bytes(b"y" * 16)
    write_preset(settings, "LINKED", [
        {"path": "checkpoints/linkdir/x.safetensors", "repo": "org/tiny", "file": "x.safetensors", "size": 64},
        {"path": "vae/own.safetensors", "repo": "org/tiny", "file": "own.safetensors", "size": 16}])
    client, _events = await dl()
    assert (await (await client.get("/api/presets/LINKED/status")).json())["status"] == "installed"
    forced = await install(client, "LINKED", status=400, force=True)
    assert forced["error"]["details"]["paths"] == ["checkpoints/linkdir/x.safetensors"]
    response = await client.delete("/api/presets/LINKED")
    body = await response.json()
    assert response.status == 200 and body["files_removed"] == 1 and not own.exists()
    assert [(e["path"], e["code"]) for e in body["errors"]] == [
        ("checkpoints/linkdir/x.safetensors", "INVALID_REQUEST")]
    assert "outside the model folders" in body["errors"][0]["message"]
    assert precious.read_bytes() == b"x" * 64


async def test_a_folder_swapped_for_a_symlink_while_paused_is_not_written(dl, settings, hub, tmp_path):
    hub_file = hub.add_file("org/tiny", "x.safetensors", size=8 * MB)
    hub_file.faults.throttle_bps = 2 * MB
    write_preset(settings, "LATER", [{"path": "checkpoints/later/x.safetensors", "repo": "org/tiny",
                                      "file": "x.safetensors", "size": 8 * MB}])
    client, events = await dl()
    download_id = (await install(client, "LATER"))["download_id"]
    await events.wait("download_progress", lambda d: d["progress"] > 0)
    await client.post(f"/api/downloads/{download_id}/pause")
    shutil.rmtree(settings.models_dir / "checkpoints" / "later")
    outside = link_outside(settings, tmp_path, "checkpoints/later")
    theirs = outside / "x.safetensors.part"  # someone else's file that happens to have the name
    theirs.write_bytes(b"not ours")
    hub_file.faults.throttle_bps = None
    await client.post(f"/api/downloads/{download_id}/resume")
    error = await events.wait("error")
    assert error["code"] == "DOWNLOAD_FAILED" and error["details"]["reason"] == "outside_model_folders"
    assert error["details"]["file"] == "checkpoints/later/x.safetensors"
    assert "outside the model folders" in error["details"]["error"]
    assert (await events.wait("download_complete"))["status"] == "failed"
    response = await client.delete(f"/api/downloads/{download_id}")
    assert response.status == 200
    assert list(outside.iterdir()) == [theirs] and theirs.read_bytes() == b"not ours"
