"""What is installed lives with the files: a lost or damaged database forgets nothing, and a state
write that fails (a full disk) ends the download clearly instead of wedging it."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest
from downloads_support import FAST_RETRY, Events, sha256_of, write_preset

from dashboard.api.context import SERVICES
from dashboard.store import Store

MB = 1024 * 1024
MODEL = "loras/tiny.safetensors"


async def start(make_client, hub):
    client = await make_client(hf_endpoint=hub.url)
    client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
    return client, Events(client)


async def install_tiny(make_client, settings, hub):
    hub_file = hub.add_file("org/tiny", "tiny.safetensors", size=3 * MB)
    write_preset(settings, "TINY", [{"path": MODEL, "repo": "org/tiny", "file": "tiny.safetensors", "size": 3 * MB}])
    client, events = await start(make_client, hub)
    assert (await client.post("/api/presets/TINY/install", json={})).status == 202
    assert (await events.wait("download_complete"))["status"] == "success"
    await client.close()
    return hub_file


def damage(database, how: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    if how == "random bytes":
        database.write_bytes(b"\x13\x37" * 20_000)
    elif how == "truncated":
        database.write_bytes(b"SQLite format 3\x00" + bytes(4000))
    elif how == "a folder":
        database.mkdir()


async def test_an_install_leaves_a_record_beside_the_file_that_the_model_list_never_shows(make_client, settings, hub):
    hub_file = await install_tiny(make_client, settings, hub)
    record = json.loads((settings.models_dir / (MODEL + ".dashboard.json")).read_text())
    assert record["sha256"] == hub_file.sha256 and record["size"] == hub_file.size
    assert record["source"]["repo"] == "org/tiny" and record["preset_id"] == "TINY"
    client, _events = await start(make_client, hub)
    listed = await (await client.get("/api/models")).json()
    assert [m["path"] for m in listed["models"]] == [MODEL]
    response = await client.delete("/api/presets/TINY")
    assert response.status == 200, await response.text()
    assert not list((settings.models_dir / "loras").iterdir())  # the record went with the file


@pytest.mark.parametrize("how", ["deleted", "random bytes", "truncated", "a folder"])
async def test_a_lost_or_damaged_database_is_rebuilt_from_the_records(make_client, settings, hub, caplog, how):
    hub_file = await install_tiny(make_client, settings, hub)
    damage(settings.data_dir / "dashboard.db", how)
    sent = hub_file.bytes_sent
    with caplog.at_level(logging.WARNING):
        client, _events = await start(make_client, hub)
    status = await (await client.get("/api/presets/TINY/status")).json()
    assert status["status"] == "installed"
    again = await client.post("/api/presets/TINY/install", json={})
    assert again.status == 409  # known as verified: nothing fetched again
    assert hub_file.bytes_sent == sent
    moved = [r for r in caplog.records if "moved aside" in r.getMessage()]
    assert len(moved) == (0 if how == "deleted" else 1) and "Traceback" not in caplog.text
    if how != "deleted":
        assert list(settings.data_dir.glob("dashboard.db.corrupt-*"))


async def test_a_full_disk_under_the_database_fails_the_download_clearly_and_resume_continues(
        make_client, settings, hub, monkeypatch, caplog):
    hub_file = hub.add_file("org/tiny", "tiny.safetensors", size=3 * MB)
    write_preset(settings, "TINY", [{"path": MODEL, "repo": "org/tiny", "file": "tiny.safetensors", "size": 3 * MB}])
    real = Store.record_installed

    async def full(self, entry):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "record_installed", full)
    client, events = await start(make_client, hub)
    download_id = (await (await client.post("/api/presets/TINY/install", json={})).json())["download_id"]
    error = await events.wait("error")
    assert error["code"] == "INSUFFICIENT_STORAGE" and error["details"]["reason"] == "disk_full"
    listed = (await (await client.get("/api/downloads")).json())["downloads"][0]
    assert listed["status"] == "failed" and listed["error"]["code"] == "INSUFFICIENT_STORAGE"
    assert "Task exception was never retrieved" not in caplog.text
    monkeypatch.setattr(Store, "record_installed", real)  # space was freed
    assert (await events.wait("download_complete"))["status"] == "failed"
    assert (await client.post(f"/api/downloads/{download_id}/resume")).status == 200
    assert (await events.wait("download_complete"))["status"] == "success"
    assert sha256_of(settings.models_dir / MODEL) == hub_file.sha256
    assert (await (await client.get("/api/presets/TINY/status")).json())["status"] == "installed"


@pytest.mark.parametrize("harm", ["truncated", "bit flipped"])
async def test_damage_is_found_shown_and_repaired_without_force(make_client, settings, hub, harm):
    hub_file = await install_tiny(make_client, settings, hub)
    model = settings.models_dir / MODEL
    data = bytearray(model.read_bytes())
    if harm == "truncated":
        model.write_bytes(data[: len(data) // 2])
    else:
        data[12345] ^= 0x01
        model.write_bytes(data)  # same size, new mtime
    client, events = await start(make_client, hub)
    status = await (await client.get("/api/presets/TINY/status")).json()
    assert status["status"] == "damaged"
    detail = await (await client.get("/api/presets/TINY")).json()
    assert [f["damaged"] for f in detail["files"]] == [True]
    verified = await (await client.post("/api/models/verify", json={"preset_id": "TINY"})).json()
    assert verified["damaged"] == 1 and verified["files"][0]["status"] == "damaged"
    assert verified["files"][0]["expected_sha256"] == hub_file.sha256
    assert (await client.post("/api/presets/TINY/install", json={})).status == 202  # no force needed
    assert (await events.wait("download_complete"))["status"] == "success"
    assert sha256_of(model) == hub_file.sha256
    assert (await (await client.get("/api/presets/TINY/status")).json())["status"] == "installed"


async def test_verify_renews_a_touched_file_and_reports_what_it_never_verified(make_client, settings, hub):
    import os

    await install_tiny(make_client, settings, hub)
    model = settings.models_dir / MODEL
    os.utime(model, (1_000_000_000, 1_000_000_000))  # touched: same bytes, another mtime
    mine = settings.models_dir / "loras" / "mine.safetensors"
    mine.write_bytes(b"my own lora")
    client, _events = await start(make_client, hub)
    assert (await (await client.get("/api/presets/TINY/status")).json())["status"] == "damaged"
    body = await (await client.post("/api/models/verify", json={"paths": [MODEL, "loras/mine.safetensors"]})).json()
    assert [(f["path"], f["status"]) for f in body["files"]] == [(MODEL, "ok"), ("loras/mine.safetensors",
                                                                                 "unverified")]
    assert (await (await client.get("/api/presets/TINY/status")).json())["status"] == "installed"


@pytest.mark.parametrize(("body", "status", "code"), [
    ({}, 400, "INVALID_REQUEST"),
    ({"paths": []}, 400, "INVALID_REQUEST"),
    ({"paths": ["loras/../../escape.safetensors"]}, 400, "INVALID_REQUEST"),
    ({"paths": ["loras/none.safetensors"]}, 404, "MODEL_NOT_FOUND"),
    ({"preset_id": "NOPE"}, 404, "PRESET_NOT_FOUND"),
    ({"paths": ["loras/x.safetensors"], "preset_id": "TINY"}, 400, "INVALID_REQUEST"),
])
async def test_verify_refuses_bad_input(make_client, hub, body, status, code):
    client, _events = await start(make_client, hub)
    response = await client.post("/api/models/verify", json=body)
    assert response.status == status and (await response.json())["error"]["code"] == code


async def test_files_another_process_installs_are_noticed_and_announced(make_client, settings, hub):
    from dashboard.services.downloads.records import write_record

    write_preset(settings, "TINY", [{"path": MODEL, "repo": "org/tiny", "file": "tiny.safetensors", "size": 3 * MB}])
    client, events = await start(make_client, hub)
    assert (await (await client.get("/api/presets/TINY/status")).json())["status"] == "not_installed"
    model = settings.models_dir / MODEL  # what another pod on the same volume does
    model.write_bytes(b"\x01" * 3 * MB)
    write_record(model, {"sha256": "ab" * 32, "preset_id": "TINY", "installed_at": 1.0})
    changed = await events.wait("models_changed")
    assert changed["paths"] == [MODEL] and changed["count"] == 1
    assert client.app[SERVICES].downloads.installed[MODEL]["sha256"] == "ab" * 32  # its record, adopted
    assert (await (await client.get("/api/presets/TINY/status")).json())["status"] == "installed"
    model.unlink()
    assert (await events.wait("models_changed"))["paths"] == [MODEL]
