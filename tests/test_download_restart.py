"""Downloads survive the process: a `kill -9` mid-file, then a restart, resumes from the `.part`."""

from __future__ import annotations

import signal

import pytest
from dashboard_process import Server, big_preset
from downloads_support import FAST_RETRY, Events, sha256_of, write_preset
from hub import FakeHub, running_hub
from support import fetch_json, wait_until

from dashboard.api.context import SERVICES

MB = 1024 * 1024


@pytest.mark.parametrize("connections", ["1", "8"])
def test_kill_9_mid_file_then_restart_fetches_only_what_is_missing(tmp_path, connections):
    size = 128 * MB
    hub = FakeHub()
    hub_file = hub.add_file("org/big", "big.safetensors", size=size)
    hub_file.faults.throttle_bps = 64 * MB // int(connections)
    workspace = tmp_path / "workspace"
    big_preset(workspace, size)
    part = workspace / "models" / "checkpoints" / "big.safetensors.part"
    env = {"DASHBOARD_CONNECTIONS_PER_FILE": connections, "DASHBOARD_RATE_LIMIT": "0"}  # the test polls often
    with running_hub(hub) as hub_url:
        first = Server(workspace, hub_url, env)
        try:
            fetch_json(first.url + "/api/presets/BIG/install", "POST", {})
            wait_until(lambda: first.download()["bytes_done"] >= size // 2)
        finally:
            first.stop(signal.SIGKILL)
        assert part.exists() and not part.with_suffix("").exists()
        hub_file.faults.throttle_bps = None

        second = Server(workspace, hub_url, env)
        try:
            done = wait_until(lambda: (d := second.download())["status"] in ("completed", "failed") and d)
            assert done["status"] == "completed", done
        finally:
            second.stop()
    final = workspace / "models" / "checkpoints" / "big.safetensors"
    assert sha256_of(final) == hub_file.sha256
    assert not part.exists()
    assert hub_file.bytes_sent <= 1.25 * size  # what the kill lost was fetched again, nothing more
    resumed = [r.range for r in hub.requests if r.method == "GET" and r.path == hub_file.url_path][-1]
    assert resumed is not None and resumed[0] > 0  # the restart asked only for what was missing


async def test_paused_stays_paused_and_finished_files_are_not_fetched_again(aiohttp_client, settings, hub):
    from dashboard.app import create_app

    for name in ("one", "two"):
        hub.add_file("org/pair", f"{name}.safetensors", size=2 * MB)
    hub.repos["org/pair"]["main"]["two.safetensors"].faults.throttle_bps = MB
    write_preset(settings, "PAIR", [{"path": f"vae/{n}.safetensors", "repo": "org/pair", "file": f"{n}.safetensors",
                                     "size": 2 * MB} for n in ("one", "two")])
    settings = settings.replace(hf_endpoint=hub.url, max_downloads=1)
    app = create_app(settings)
    client = await aiohttp_client(app)
    app[SERVICES].downloads.transfer.retry = FAST_RETRY
    events = Events(client)
    download_id = (await (await client.post("/api/presets/PAIR/install", json={})).json())["download_id"]
    await events.wait("download_progress", lambda d: d["files"]["completed"] == 1 and d["progress"] > 50)
    await client.post(f"/api/downloads/{download_id}/pause")
    await client.close()  # a clean stop: the app's services shut down

    client = await aiohttp_client(create_app(settings))
    client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
    listing = await (await client.get("/api/downloads")).json()
    assert listing["downloads"][0]["status"] == "paused"
    assert listing["downloads"][0]["files"]["completed"] == 1
    hub.repos["org/pair"]["main"]["two.safetensors"].faults.throttle_bps = None
    events = Events(client)
    await client.post(f"/api/downloads/{download_id}/resume")
    assert (await events.wait("download_complete"))["status"] == "success"
    assert len([r for r in hub.requests if r.method == "GET" and r.path.endswith("one.safetensors")]) == 1
