"""The download limits: read and changed while running, over HTTP and the socket; yielding to a prompt."""

from __future__ import annotations

import asyncio

import pytest
from comfyui_standin import Worker, install
from downloads_support import Events
from support import EMPTY

from dashboard.api.context import SERVICES
from dashboard.comfy.inprocess import InProcessBackend


async def test_settings_come_from_the_environment_and_change_while_running(make_client):
    client = await make_client(max_bandwidth=50_000_000, connections_per_file=4)
    answer = await (await client.get("/api/downloads/settings")).json()
    assert answer == {"max_bandwidth_bytes": 50_000_000, "connections_per_file": 4, "max_connections": 16,
                      "yield_to_generation": True, "yield_share": 0.25, "yielding": False, "connections_in_use": 0}
    response = await client.put("/api/downloads/settings", json={"max_bandwidth_bytes": None, "max_connections": 3})
    assert response.status == 200
    changed = await response.json()
    assert changed["max_bandwidth_bytes"] is None and changed["max_connections"] == 3
    assert changed == await (await client.get("/api/downloads/settings")).json()
    transfer = client.app[SERVICES].downloads.transfer
    assert transfer.bandwidth.rate is None and transfer.connections.total == 3  # running transfers follow


@pytest.mark.parametrize(("body", "field"), [
    ({"connections_per_file": 0}, "connections_per_file"),
    ({"connections_per_file": 33}, "connections_per_file"),
    ({"max_bandwidth_bytes": "50MB/s"}, "max_bandwidth_bytes"),
    ({"max_connections": 1.5}, "max_connections"),
    ({"yield_share": 0}, "yield_share"),
    ({"speed": "fast"}, None),
    ({}, None),
])
async def test_invalid_settings_are_refused_and_change_nothing(make_client, body, field):
    client = await make_client()
    before = await (await client.get("/api/downloads/settings")).json()
    response = await client.put("/api/downloads/settings", json=body)
    error = (await response.json())["error"]
    assert response.status == 400 and error["code"] == "INVALID_REQUEST"
    if field:
        assert error["details"]["field"] == field
    assert await (await client.get("/api/downloads/settings")).json() == before


async def test_settings_change_over_the_socket(make_client):
    client = await make_client()
    async with client.ws_connect("/ws") as ws:
        await ws.send_json({"type": "action", "action": "set_download_settings", "id": 1,
                            "data": {"connections_per_file": 2}})
        replies = [await ws.receive_json() for _ in range(2)]
        assert replies[0]["type"] == "ack" and replies[1]["type"] == "result"
        assert replies[1]["data"]["connections_per_file"] == 2
        await ws.send_json({"type": "action", "action": "set_download_settings", "id": 2,
                            "data": {"connections_per_file": -1}})
        error = await ws.receive_json()
        assert error["type"] == "error" and error["data"]["code"] == "INVALID_REQUEST" and error.get("id") == 2
    assert (await (await client.get("/api/downloads/settings")).json())["connections_per_file"] == 2


async def test_downloads_yield_while_a_prompt_runs(make_client, monkeypatch, tmp_path):
    server = install(monkeypatch, tmp_path / "comfyui", asyncio.get_running_loop())
    client = await make_client(InProcessBackend(server), max_bandwidth=40_000_000)
    events = Events(client)
    worker = Worker(server)
    bandwidth = client.app[SERVICES].downloads.transfer.bandwidth
    response = await client.post("/api/comfyui/execute", json={"workflow": EMPTY})
    assert response.status == 200
    worker.start_next()
    await events.wait("download_settings", lambda d: d["yielding"])
    assert (await (await client.get("/api/downloads")).json())["yielding"] is True
    assert bandwidth.effective == 10_000_000  # a quarter of the budget while ComfyUI generates
    worker.finish()
    await events.wait("download_settings", lambda d: not d["yielding"])
    assert bandwidth.effective == 40_000_000


async def test_downloads_do_not_yield_when_told_not_to(make_client, monkeypatch, tmp_path):
    server = install(monkeypatch, tmp_path / "comfyui", asyncio.get_running_loop())
    client = await make_client(InProcessBackend(server), max_bandwidth=40_000_000, yield_to_generation=False)
    events = Events(client)
    worker = Worker(server)
    await client.post("/api/comfyui/execute", json={"workflow": EMPTY})
    worker.start_next()
    await events.wait("queue_update", lambda d: d["queue_running"] == 1)
    assert (await (await client.get("/api/downloads/settings")).json())["yielding"] is False
    assert client.app[SERVICES].downloads.transfer.bandwidth.effective == 40_000_000
