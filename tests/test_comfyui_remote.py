"""The remote backend against a local server speaking ComfyUI's HTTP and WebSocket protocol."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from comfyui_standin import ServedComfyUI
from support import EMPTY, call, until

from dashboard.api.context import SERVICES
from dashboard.comfy.protocol import PRIORITY_STEP
from dashboard.comfy.remote import RemoteBackend


async def next_event(events, match, timeout: float = 10):
    """The first bus event for which `match(event)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        event = await asyncio.wait_for(events.get(), max(0.01, deadline - time.monotonic()))
        if match(event):
            return event


@pytest.fixture
async def comfyui():
    served = await ServedComfyUI().start()
    yield served
    await served.stop()


@pytest.fixture
async def remote(make_client, comfyui):
    """(stand-in ComfyUI, the backend, a client of the standalone app, a queue of every bus event)."""
    backend = RemoteBackend(comfyui.url, reconnect_delay=0.02, max_reconnect_delay=0.2)
    client = await make_client(backend)
    events, _unsubscribe = client.app[SERVICES].bus.queue()
    await until(lambda: backend.connected, what="the WebSocket")
    return comfyui, backend, client, events


async def execute(client, status: int = 200, workflow=EMPTY, **extra):
    return await call(client, "POST", "/api/comfyui/execute", status, json={"workflow": workflow, **extra})


async def test_health_and_execute_over_http(remote):
    comfyui, backend, client, _events = remote
    health = await call(client, "GET", "/api/comfyui/health")
    assert health == {"status": "healthy", "version": "0.3.64-standin", "queue": {"pending": 0, "running": 0}}
    body = await execute(client)
    assert body["status"] == "queued" and body["number"] == 0
    _running, pending = comfyui.server.prompt_queue.get_current_queue_volatile()
    assert pending[0][1] == body["prompt_id"] and pending[0][3]["client_id"] == backend.client_id


async def test_invalid_workflow_carries_comfyuis_node_errors(remote):
    _comfyui, _backend, client, _events = remote
    body = await execute(client, 400, {**EMPTY, "1": {"class_type": "EmptyImage", "inputs": {"width": "wide"}}})
    assert body["error"]["code"] == "INVALID_WORKFLOW"
    assert body["error"]["details"]["error"]["type"] == "prompt_outputs_failed_validation"
    assert "1" in body["error"]["details"]["node_errors"]


async def test_priorities_use_comfyuis_numbers(remote):
    comfyui, _backend, client, _events = remote
    names = {}
    answered = []
    for name, priority in [("a", 0), ("b", 2), ("c", 0), ("d", 2), ("e", -1)]:
        answer = await execute(client, priority=priority)
        names[answer["prompt_id"]] = name
        answered.append(answer["number"])
    queue = await call(client, "GET", "/api/comfyui/queue")
    assert [names[i["prompt_id"]] for i in queue["queue_pending"]] == ["b", "d", "a", "c", "e"]
    numbers = [i["number"] for i in queue["queue_pending"]]
    assert all(type(n) is int for n in answered + numbers)  # integers, as the spec shows them
    assert numbers[0] < -PRIORITY_STEP and numbers[2:4] == [0, 1] and numbers[4] > PRIORITY_STEP
    ran = []
    while (prompt_id := comfyui.worker.run_next()) is not None:
        ran.append(names[prompt_id])
    assert ran == ["b", "d", "a", "c", "e"]


async def test_history_clear_and_interrupt(remote):
    comfyui, _backend, client, _events = remote
    first = (await execute(client))["prompt_id"]
    assert (await call(client, "GET", f"/api/comfyui/history/{first}"))["status"] == "pending"
    comfyui.worker.run_next()
    done = await call(client, "GET", f"/api/comfyui/history/{first}")
    assert done["status"] == "completed" and done["outputs"]["images"][0]["filename"] == "t_00001_.png"
    assert done["started"] and done["completed"]
    assert (await call(client, "GET", "/api/comfyui/history/nope", 404))["error"]["code"] == "PROMPT_NOT_FOUND"

    running = (await execute(client))["prompt_id"]
    await execute(client)
    await execute(client)
    comfyui.worker.start_next()
    assert (await call(client, "GET", f"/api/comfyui/history/{running}"))["status"] == "running"
    assert await call(client, "DELETE", "/api/comfyui/queue") == {"cleared": 2, "status": "success"}
    assert await call(client, "POST", "/api/comfyui/interrupt") == {"status": "interrupted"}
    assert comfyui.worker.finish() == "interrupted"
    assert (await call(client, "GET", f"/api/comfyui/history/{running}"))["status"] == "interrupted"
    assert await call(client, "POST", "/api/comfyui/interrupt") == {"status": "idle"}
    assert await call(client, "DELETE", "/api/comfyui/queue?type=all") == {"cleared": 0, "status": "success"}


async def test_queue_full(make_client, comfyui):
    client = await make_client(RemoteBackend(comfyui.url), max_queue=1)
    await execute(client)
    assert (await execute(client, 429))["error"]["code"] == "QUEUE_FULL"


async def test_execution_events_arrive_over_the_websocket(remote):
    comfyui, _backend, client, events = remote
    prompt_id = (await execute(client))["prompt_id"]
    update = await next_event(events, lambda e: e.type == "queue_update" and e.data["queue_pending"] == 1)
    assert update.channel == "queue" and update.data["current_task"] is None
    comfyui.worker.run_next()
    output = await next_event(events, lambda e: e.type == "workflow_output")
    resources = output.data.pop("resources")  # the prompt so far: how long, its peaks (none sampled yet here)
    assert output.data == {"prompt_id": prompt_id, "node": "2", "output": {
        "images": [{"filename": "t_00001_.png", "subfolder": "", "type": "output"}]}}
    assert set(resources) == {"duration_seconds", "peak_ram_gb", "peak_vram_gb", "samples"}
    done = await next_event(events, lambda e: e.type == "workflow_progress" and e.data["type"] == "completed")
    assert done.channel == "workflows" and done.data["prompt_id"] == prompt_id
    idle = await next_event(events, lambda e: e.type == "queue_update" and e.data["queue_pending"] == 0
                            and e.data["queue_running"] == 0)
    assert idle.data["current_task"] is None


async def test_a_failure_arrives_as_an_error_event(remote):
    comfyui, _backend, client, events = remote
    prompt_id = (await execute(client))["prompt_id"]
    comfyui.worker.run_next(fail_node="2")
    error = await next_event(events, lambda e: e.type == "error")
    assert error.data["code"] == "WORKFLOW_FAILED" and error.data["details"]["prompt_id"] == prompt_id


async def test_reconnects_after_comfyui_restarts(remote):
    comfyui, backend, client, events = remote
    await comfyui.stop()
    await until(lambda: not backend.connected, what="the disconnect")
    down = await call(client, "GET", "/api/comfyui/queue", 503)
    assert down["error"]["code"] == "COMFYUI_UNAVAILABLE"
    await comfyui.start()  # a fresh ComfyUI on the same port
    await until(lambda: backend.connected, what="the reconnect")
    prompt_id = (await execute(client))["prompt_id"]
    comfyui.worker.run_next()
    done = await next_event(events, lambda e: e.type == "workflow_progress" and e.data["type"] == "completed")
    assert done.data["prompt_id"] == prompt_id


async def test_starts_before_comfyui_and_connects_when_it_appears(make_client):
    comfyui = ServedComfyUI()
    await comfyui.start()
    port = comfyui.port
    await comfyui.stop()
    backend = RemoteBackend(comfyui.url, reconnect_delay=0.02, max_reconnect_delay=0.1)
    client = await make_client(backend)
    assert (await call(client, "GET", "/api/comfyui/health", 503))["error"]["code"] == "COMFYUI_UNAVAILABLE"
    late = await ServedComfyUI(port).start()
    try:
        await until(lambda: backend.connected, what="the first connection")
        assert (await call(client, "GET", "/api/comfyui/health"))["status"] == "healthy"
    finally:
        await late.stop()


async def test_output_files_stream_through_and_the_page_shows_them(make_client, tmp_path):
    output = tmp_path / "output"
    (output / "renders").mkdir(parents=True)
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2000
    (output / "renders" / "ComfyUI_00001_.png").write_bytes(image)
    (tmp_path / "secret.txt").write_text("not an output")
    served = await ServedComfyUI(directories={"output": output, "input": tmp_path / "input"}).start()
    try:
        client = await make_client(RemoteBackend(served.url, reconnect_delay=0.02))

        async def view(**query):
            response = await client.get("/api/comfyui/view", params=query)
            return response, await response.read()

        response, body = await view(filename="ComfyUI_00001_.png", subfolder="renders")
        assert response.status == 200 and body == image
        assert response.content_type == "image/png" and response.headers["X-Content-Type-Options"] == "nosniff"
        for query, status, code in [
            ({"filename": "ComfyUI_00002_.png", "subfolder": "renders"}, 404, "NOT_FOUND"),
            ({"filename": "secret.txt", "subfolder": ".."}, 400, "INVALID_REQUEST"),  # ComfyUI: 403
            ({"filename": "../secret.txt"}, 400, "INVALID_REQUEST"),  # ComfyUI: 400
            ({"filename": "x.png", "type": "temp"}, 400, "INVALID_REQUEST"),  # no temp folder here
            ({"filename": "x.png", "type": "models"}, 400, "INVALID_REQUEST"),  # refused before ComfyUI
            ({"subfolder": "renders"}, 400, "INVALID_REQUEST"),
        ]:
            response, body = await view(**query)
            assert (response.status, json.loads(body)["error"]["code"]) == (status, code), query
        page = await (await client.get("/")).text()
        assert 'data-comfyui-view="api/comfyui/view"' in page  # the page's thumbnails come through here
    finally:
        await served.stop()
    response = await client.get("/api/comfyui/view", params={"filename": "ComfyUI_00001_.png"})
    assert response.status == 503 and (await response.json())["error"]["code"] == "COMFYUI_UNAVAILABLE"
