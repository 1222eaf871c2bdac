"""The live feed at /ws: subscriptions, snapshots, actions, bad input and slow clients."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from downloads_support import FAST_RETRY, write_preset
from hub import FakeHub, running_hub
from support import logged_faults, until

import dashboard.ws.connection as ws_module
from dashboard.api.context import HUB, SERVICES

MB = 1024 * 1024


async def receive(socket, type_: str, timeout: float = 30) -> dict:
    """The next message of this type (earlier ones of other types are skipped)."""

    async def next_match():
        while True:
            message = await socket.receive_json()
            if message["type"] == type_:
                return message

    return await asyncio.wait_for(next_match(), timeout)


async def test_subscribe_acks_with_id_and_sends_snapshots(client):
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "subscribe", "channels": ["downloads", "system", "queue"], "id": 7})
        ack = await socket.receive_json()
        assert ack == {"type": "subscribed", "id": 7, "channels": ["downloads", "queue", "system"]}
        snapshots = {}
        for _ in range(3):
            message = await socket.receive_json()
            assert message["type"] == "snapshot"
            snapshots[message["channel"]] = message["data"]
        assert snapshots["downloads"] == {"downloads": [], "active": 0, "total": 0, "yielding": False}
        assert {"cpu_usage", "memory_usage", "gpu_usage", "disk_usage"} <= snapshots["system"].keys()
        assert snapshots["queue"]["error"]["code"] == "COMFYUI_UNAVAILABLE"


async def test_system_status_arrives_at_the_sampling_interval(client):
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "subscribe", "channels": ["system"]})
        status = await receive(socket, "system_status")
        assert {"cpu_usage", "memory_usage", "gpu_usage", "disk_usage"} <= status["data"].keys()


async def test_unsubscribed_channels_stay_quiet(client):
    bus = client.app[SERVICES].bus
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "subscribe", "channels": ["downloads"]})
        await receive(socket, "snapshot")
        await socket.send_json({"type": "unsubscribe", "channels": ["downloads"], "id": "u"})
        assert (await receive(socket, "unsubscribed"))["channels"] == []
        bus.publish("download_complete", {"download_id": "dl_x"}, "downloads")
        await socket.send_json({"type": "ping", "id": 1})
        assert await socket.receive_json() == {"type": "pong", "id": 1}


@pytest.mark.parametrize(("frame", "complaint"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"type": "dance"}', "Unknown message type"),
    ('{"type": "subscribe", "channels": ["gossip"]}', "Invalid subscribe"),
    ('{"type": "subscribe"}', "Invalid subscribe"),
    ('{"type": "action", "action": "launch_rockets", "id": 3}', "Unknown action"),
    ('{"type": "action", "action": "pause_download", "data": {"download_id": 5}}', "Invalid data"),
    ('{"type": "action", "action": "install_preset", "data": {}}', "Invalid data"),
])
async def test_bad_messages_get_an_error_and_the_connection_lives_on(client, frame, complaint):
    async with client.ws_connect("/ws") as socket:
        await socket.send_str(frame)
        error = await socket.receive_json()
        assert error["type"] == "error" and error["data"]["code"] == "INVALID_REQUEST"
        assert complaint in error["data"]["message"]
        await socket.send_json({"type": "ping"})
        assert (await socket.receive_json())["type"] == "pong"


async def test_binary_and_oversized_frames_get_errors(client, monkeypatch):
    monkeypatch.setattr(ws_module, "MAX_MESSAGE_BYTES", 1000)
    async with client.ws_connect("/ws") as socket:
        await socket.send_bytes(b"\x00\x01")
        assert (await socket.receive_json())["data"]["code"] == "INVALID_REQUEST"
        await socket.send_str(json.dumps({"type": "ping", "pad": "x" * 2000}))
        assert "larger than" in (await socket.receive_json())["data"]["message"]
        await socket.send_json({"type": "ping"})
        assert (await socket.receive_json())["type"] == "pong"


async def test_action_errors_carry_the_spec_code_and_the_id(client):
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "action", "action": "pause_download", "data": {"download_id": "dl_no"},
                                "id": "p1"})
        assert await socket.receive_json() == {"type": "ack", "id": "p1", "action": "pause_download"}
        error = await socket.receive_json()
        assert error["type"] == "error" and error["id"] == "p1"
        assert error["data"]["code"] == "DOWNLOAD_NOT_FOUND" and error["data"]["details"]["action"] == "pause_download"
        await socket.send_json({"type": "action", "action": "interrupt", "id": "i"})
        await receive(socket, "ack")
        assert (await socket.receive_json())["data"]["code"] == "COMFYUI_UNAVAILABLE"


async def test_install_through_the_socket_and_watch_it_finish(make_client, settings):
    hub = FakeHub()
    hub.add_file("org/tiny", "tiny.safetensors", size=2 * MB)
    write_preset(settings, "TINY", [{"path": "loras/tiny.safetensors", "repo": "org/tiny",
                                     "file": "tiny.safetensors", "size": 2 * MB}])
    with running_hub(hub) as url:
        client = await make_client(hf_endpoint=url)
        client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
        async with client.ws_connect("/ws") as socket:
            await socket.send_json({"type": "subscribe", "channels": ["downloads"]})
            await receive(socket, "snapshot")
            await socket.send_json({"type": "action", "action": "install_preset", "data": {"preset_id": "TINY"},
                                    "id": 1})
            result = await receive(socket, "result")
            assert result["id"] == 1 and result["success"] and result["data"]["download_id"].startswith("dl_")
            progress = await receive(socket, "download_progress")
            assert {"download_id", "preset_id", "progress", "current_file", "speed", "eta", "files"} <= \
                progress["data"].keys()
            assert progress["data"]["speed"].endswith("/s")
            done = await receive(socket, "download_complete")
            assert done["data"]["status"] == "success" and done["data"]["preset_id"] == "TINY"


async def test_progress_is_coalesced_to_the_latest_value(client):
    hub = client.app[HUB]
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "subscribe", "channels": ["downloads"]})
        await receive(socket, "snapshot")
        (connection,) = hub.connections
        bus = client.app[SERVICES].bus
        for value in range(50):  # all in one loop turn: the sender has no chance to send in between
            bus.publish("download_progress", {"download_id": "dl_a", "progress": value}, "downloads")
        bus.publish("download_complete", {"download_id": "dl_a", "status": "success"}, "downloads")
        assert (await socket.receive_json())["data"]["progress"] == 49
        assert (await socket.receive_json())["type"] == "download_complete"
        assert connection.dropped is False


async def test_a_client_that_never_reads_is_dropped_and_others_get_everything(client, monkeypatch):
    monkeypatch.setattr(ws_module, "OUTBOX_LIMIT", 64)
    hub = client.app[HUB]
    bus = client.app[SERVICES].bus
    stalled = await client.ws_connect("/ws")
    await stalled.send_json({"type": "subscribe", "channels": ["downloads"]})
    async with client.ws_connect("/ws") as reader:
        await reader.send_json({"type": "subscribe", "channels": ["downloads"]})
        await receive(reader, "snapshot")
        await until(lambda: len(hub.connections) == 2 and all("downloads" in c.channels for c in hub.connections),
                    what="both sockets subscribed")
        payload = "x" * 64 * 1024
        received = 0
        for round_ in range(40):
            for i in range(20):
                bus.publish("download_complete", {"download_id": f"dl_{round_}_{i}", "pad": payload}, "downloads")
            for _ in range(20):
                await receive(reader, "download_complete")
                received += 1
            if len(hub.connections) == 1:
                break
        assert len(hub.connections) == 1, "the stalled client was never dropped"
        assert received == (round_ + 1) * 20
        await reader.send_json({"type": "ping"})
        assert (await receive(reader, "pong"))["type"] == "pong"
    await stalled.close()


async def test_a_client_that_subscribes_again_and_again_but_reads_stays_connected(client):
    channels = ["downloads", "queue", "system", "workflows"]
    async with client.ws_connect("/ws") as socket:
        for i in range(1000):  # all sent before reading any answer
            await socket.send_json({"type": "subscribe", "channels": channels, "id": i})
        await socket.send_json({"type": "ping", "id": "last"})
        acks, snapshots = [], []
        while (message := await asyncio.wait_for(socket.receive_json(), 30))["type"] != "pong":
            if message["type"] == "subscribed":
                acks.append(message["id"])
                assert message["channels"] == channels
            elif message["type"] == "snapshot":
                snapshots.append(message["channel"])
        assert acks == list(range(1000))
        assert sorted(snapshots) == channels  # one each: a channel already subscribed sends none again
        assert message["id"] == "last"
        (connection,) = client.app[HUB].connections
        assert connection.dropped is False


async def test_websocket_from_a_foreign_page_is_refused(client):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403


async def test_clients_that_vanish_leave_no_server_error(client, caplog):
    bus = client.app[SERVICES].bus
    for _ in range(5):
        socket = await client.ws_connect("/ws")
        await socket.send_json({"type": "subscribe", "channels": ["downloads"]})
        await receive(socket, "snapshot")
        socket._response.connection.transport.abort()  # the tab is gone, no close frame
        bus.publish("download_complete", {"download_id": "dl_x"}, "downloads")
    await until(lambda: not client.app[HUB].connections, what="the vanished sockets to be dropped")
    async with client.ws_connect("/ws") as socket:  # the next tab is served as usual
        await socket.send_json({"type": "subscribe", "channels": ["downloads"]})
        await receive(socket, "snapshot")
        bus.publish("download_complete", {"download_id": "dl_y"}, "downloads")
        assert (await receive(socket, "download_complete"))["data"]["download_id"] == "dl_y"
    assert logged_faults(caplog) == [] and "Traceback" not in caplog.text
