"""Queue control on the ComfyUI stand-in, in process and over HTTP: hold and release, reorder, pause
and resume (prompts from the API and from ComfyUI's own UI), the held list and the pending prompts
kept across restarts, export and import, and ComfyUI's /free."""

from __future__ import annotations

import asyncio

import pytest
from comfyui_standin import ServedComfyUI, Worker, install
from support import EMPTY, call, until

from dashboard.api.context import SERVICES
from dashboard.comfy.inprocess import InProcessBackend
from dashboard.comfy.protocol import PRIORITY_STEP
from dashboard.comfy.remote import RemoteBackend


@pytest.fixture
async def comfy(make_client, monkeypatch, tmp_path):
    """(stand-in PromptServer, its worker, a function making a client of an app on the in-process backend)."""
    server = install(monkeypatch, tmp_path / "comfyui", asyncio.get_running_loop())

    async def client():
        return await make_client(InProcessBackend(server))

    return server, Worker(server), client


async def execute(client, priority: int = 0) -> str:
    return (await call(client, "POST", "/api/comfyui/execute", json={"workflow": EMPTY, "priority": priority}))[
        "prompt_id"]


def from_the_editor(server, prompt_id: str) -> None:
    """A prompt queued in ComfyUI's own UI (its POST /prompt: ComfyUI's counter, a browser's client id)."""
    server.prompt_queue.put((server.number, prompt_id, EMPTY, {"client_id": "browser"}, ["2"]))
    server.number += 1


def comfyui_order(server) -> list[str]:
    """The pending prompt ids in the order ComfyUI runs them."""
    return [item[1] for item in sorted(server.prompt_queue.get_current_queue_volatile()[1])]


async def queue(client) -> dict:
    return await call(client, "GET", "/api/comfyui/queue")


async def test_hold_takes_a_prompt_out_of_comfyuis_queue_and_release_puts_it_back(comfy):
    server, _worker, make = comfy
    client = await make()
    ours = await execute(client)
    from_the_editor(server, "editor-1")
    before = {item[1]: item[0] for item in server.prompt_queue.get_current_queue_volatile()[1]}
    for prompt_id in (ours, "editor-1"):
        assert await call(client, "POST", f"/api/comfyui/queue/{prompt_id}/hold") == {"status": "held",
                                                                                       "prompt_id": prompt_id}
    assert comfyui_order(server) == []
    body = await queue(client)
    assert body["queue_pending"] == [] and [h["prompt_id"] for h in body["held"]] == [ours, "editor-1"]
    assert [h["reason"] for h in body["held"]] == ["held", "held"] and body["held"][0]["priority"] == 0
    released = await call(client, "POST", "/api/comfyui/queue/editor-1/release")
    assert released == {"status": "queued", "prompt_id": "editor-1", "number": before["editor-1"]}
    assert comfyui_order(server) == ["editor-1"] and [h["prompt_id"] for h in (await queue(client))["held"]] == [ours]


async def test_only_pending_prompts_can_be_held_or_moved(comfy):
    _server, worker, make = comfy
    client = await make()
    running = await execute(client)
    worker.start_next()
    for method, path, body in [("POST", f"/api/comfyui/queue/{running}/hold", None),
                               ("PATCH", f"/api/comfyui/queue/{running}", {"position": "top"})]:
        response = await client.request(method, path, json=body)
        assert response.status == 409 and (await response.json())["error"]["code"] == "PROMPT_NOT_PENDING"
    for method, path, body in [("POST", "/api/comfyui/queue/nope/hold", None),
                               ("POST", "/api/comfyui/queue/nope/release", None),
                               ("PATCH", "/api/comfyui/queue/nope", {"priority": 3})]:
        response = await client.request(method, path, json=body)
        assert response.status == 404 and (await response.json())["error"]["code"] == "PROMPT_NOT_FOUND"
    for body in ({}, {"priority": 1, "position": "top"}, {"position": "middle"}, {"priority": 10**6}):
        response = await client.patch(f"/api/comfyui/queue/{running}", json=body)
        assert response.status == 400 and (await response.json())["error"]["code"] == "INVALID_REQUEST"


async def test_reorder_any_pending_prompt_in_comfyuis_own_numbers(comfy):
    server, _worker, make = comfy
    client = await make()
    first, second = await execute(client), await execute(client)
    from_the_editor(server, "editor")
    assert comfyui_order(server) == [first, second, "editor"]
    moved = await call(client, "PATCH", "/api/comfyui/queue/editor", json={"position": "top"})
    assert comfyui_order(server) == ["editor", first, second] and moved["priority"] is None
    moved = await call(client, "PATCH", f"/api/comfyui/queue/{second}", json={"priority": 5})
    assert moved["number"] == 1 - 5 * PRIORITY_STEP and moved["priority"] == 5
    assert comfyui_order(server) == [second, "editor", first]
    await call(client, "PATCH", f"/api/comfyui/queue/{second}", json={"position": "bottom"})
    assert comfyui_order(server) == ["editor", first, second]
    await call(client, "PATCH", f"/api/comfyui/queue/{second}", json={"before": first})  # dragged up one
    assert comfyui_order(server) == ["editor", second, first]
    await call(client, "PATCH", "/api/comfyui/queue/editor", json={"after": first})
    assert comfyui_order(server) == [second, first, "editor"]
    missing = await client.patch("/api/comfyui/queue/editor", json={"before": "nope"})
    assert missing.status == 404
    listed = (await queue(client))["queue_pending"]
    assert [p["prompt_id"] for p in listed] == [second, first, "editor"]


async def test_pause_lets_the_running_prompt_finish_and_holds_everything_else_until_resume(comfy):
    server, worker, make = comfy
    client = await make()
    events, _unsubscribe = client.app[SERVICES].bus.queue()
    running = await execute(client)
    worker.start_next()
    waiting = await execute(client)
    paused = await call(client, "POST", "/api/comfyui/queue/pause")
    assert paused["paused"] is True and paused["held"] == 1
    later = await execute(client, priority=3)  # queued while paused, through the API ...
    from_the_editor(server, "editor")  # ... and from ComfyUI's own UI
    assert comfyui_order(server) == []
    worker.finish()
    assert server.prompt_queue.get_current_queue_volatile() == ([], [])  # the worker finds nothing to run
    body = await queue(client)
    assert body["paused"] is True and [h["prompt_id"] for h in body["held"]] == [waiting, later, "editor"]
    assert {h["reason"] for h in body["held"]} == {"paused"}

    async def announced():
        while True:
            event = await events.get()
            if event.type == "queue_update" and event.data.get("paused") and event.data.get("held") == 3:
                return event.data

    await asyncio.wait_for(announced(), 10)
    resumed = await call(client, "POST", "/api/comfyui/queue/resume")
    assert resumed["paused"] is False and resumed["held"] == 0
    assert comfyui_order(server) == [later, waiting, "editor"]  # their priorities hold again
    assert resumed["released"] == [later, waiting, "editor"]
    assert running not in comfyui_order(server)


async def test_the_held_list_and_the_pause_survive_a_restart_of_the_dashboard(comfy):
    server, _worker, make = comfy
    client = await make()
    held = await execute(client)
    await call(client, "POST", f"/api/comfyui/queue/{held}/hold")
    await call(client, "POST", "/api/comfyui/queue/pause")
    await client.close()
    client = await make()
    body = await queue(client)
    assert body["paused"] is True and [h["prompt_id"] for h in body["held"]] == [held]
    from_the_editor(server, "while-paused")
    assert comfyui_order(server) == []  # still paused after the restart
    await call(client, "POST", "/api/comfyui/queue/resume")
    assert comfyui_order(server) == ["while-paused"]
    await call(client, "POST", f"/api/comfyui/queue/{held}/release")
    assert comfyui_order(server) == [held, "while-paused"]


async def test_pending_prompts_come_back_once_after_comfyui_restarts(make_client, monkeypatch, tmp_path):
    server = install(monkeypatch, tmp_path / "comfyui", asyncio.get_running_loop())
    client = await make_client(InProcessBackend(server))
    first, second = await execute(client), await execute(client, priority=2)
    await until(lambda: _saved(client, 2), what="the pending prompts kept")
    await client.close()

    restarted = install(monkeypatch, tmp_path / "comfyui", asyncio.get_running_loop())  # a fresh, empty queue
    client = await make_client(InProcessBackend(restarted))
    await until(lambda: comfyui_order(restarted) == [second, first], what="the prompts queued again")
    body = await queue(client)
    assert body["restored"]["prompt_ids"] == [second, first]
    await client.close()
    client = await make_client(InProcessBackend(restarted))  # the dashboard again, ComfyUI kept them: no copies
    await until(lambda: _saved(client, 2), what="the pending prompts kept")
    assert comfyui_order(restarted) == [second, first] and (await queue(client))["restored"] is None


def _saved(client, count: int) -> bool:
    return len(client.app[SERVICES].queue_control._saved_pending) == count


async def test_export_and_import_the_queue(comfy):
    server, _worker, make = comfy
    client = await make()
    kept, held = await execute(client), await execute(client, priority=1)
    await call(client, "POST", f"/api/comfyui/queue/{held}/hold")
    document = await call(client, "GET", "/api/comfyui/queue/export")
    assert document["format"] == "comfyui-dashboard-queue" and [p["prompt_id"] for p in document["pending"]] == [kept]
    assert document["pending"][0]["workflow"] == EMPTY and [p["prompt_id"] for p in document["held"]] == [held]
    assert await call(client, "POST", "/api/comfyui/queue/import", json=document) == {
        "queued": [], "held": [], "skipped": [kept, held]}
    await call(client, "DELETE", "/api/comfyui/queue")
    await call(client, "POST", f"/api/comfyui/queue/{held}/release")
    await call(client, "DELETE", "/api/comfyui/queue")
    imported = await call(client, "POST", "/api/comfyui/queue/import", json=document)
    assert imported == {"queued": [kept], "held": [held], "skipped": []}
    assert comfyui_order(server) == [kept] and [h["prompt_id"] for h in (await queue(client))["held"]] == [held]
    for bad in ({"format": "something else"}, {"format": "comfyui-dashboard-queue",
                                               "pending": [{"prompt_id": "x", "number": 1, "workflow": []}]}):
        response = await client.post("/api/comfyui/queue/import", json=bad)
        assert response.status == 400 and (await response.json())["error"]["code"] in ("INVALID_REQUEST",
                                                                                        "INVALID_WORKFLOW")


async def test_free_asks_comfyui_to_unload_models_and_free_memory(comfy):
    server, _worker, make = comfy
    client = await make()
    answer = await call(client, "POST", "/api/comfyui/free", json={"unload_models": True, "free_memory": True})
    assert answer == {"status": "requested", "unload_models": True, "free_memory": True}
    assert server.prompt_queue.flags == {"unload_models": True, "free_memory": True}
    bad = await client.post("/api/comfyui/free", json={"unload_models": "yes"})
    assert bad.status == 400


async def test_over_the_socket(comfy):
    server, _worker, make = comfy
    client = await make()
    pending = await execute(client)
    async with client.ws_connect("/ws") as socket:
        for n, (action, data) in enumerate([("hold_prompt", {"prompt_id": pending}),
                                            ("release_prompt", {"prompt_id": pending}),
                                            ("pause_queue", {}), ("resume_queue", {})]):
            await socket.send_json({"type": "action", "action": action, "id": f"a{n}", "data": data})
            while (message := await socket.receive_json(timeout=10))["type"] != "result":
                pass
            assert message["success"], message
    assert comfyui_order(server) == [pending]


# ---- a remote ComfyUI ----

@pytest.fixture
async def remote(make_client):
    comfyui = await ServedComfyUI().start()
    backend = RemoteBackend(comfyui.url, reconnect_delay=0.02, max_reconnect_delay=0.2)
    client = await make_client(backend)
    await until(lambda: backend.connected, what="the WebSocket")
    yield comfyui, client
    await comfyui.stop()


async def test_hold_release_move_and_free_over_http(remote):
    comfyui, client = remote
    server = comfyui.server
    first, second = await execute(client), await execute(client)
    await call(client, "POST", f"/api/comfyui/queue/{second}/hold")
    assert comfyui_order(server) == [first]
    await call(client, "POST", f"/api/comfyui/queue/{second}/release")
    assert comfyui_order(server) == [first, second]
    await call(client, "PATCH", f"/api/comfyui/queue/{second}", json={"position": "top"})
    assert comfyui_order(server) == [second, first]
    await call(client, "POST", "/api/comfyui/free", json={"unload_models": True})
    assert server.prompt_queue.flags == {"unload_models": True}


async def test_a_remote_pause_takes_new_prompts_from_comfyuis_queue(remote):
    comfyui, client = remote
    server = comfyui.server
    worker = Worker(server)
    running = await execute(client)
    worker.start_next()  # ComfyUI is busy: what is queued now waits
    await call(client, "POST", "/api/comfyui/queue/pause")
    from_the_editor(server, "editor")
    server.send_sync("status", {"status": {"exec_info": {"queue_remaining": 2}}})  # what ComfyUI broadcasts

    async def taken():
        return [h["prompt_id"] for h in (await queue(client))["held"]] == ["editor"]

    await until(taken, what="the new prompt held")
    assert comfyui_order(server) == []
    worker.finish()
    await call(client, "POST", "/api/comfyui/queue/resume")
    assert comfyui_order(server) == ["editor"] and running not in comfyui_order(server)


async def test_each_prompt_reports_its_duration_and_peak_ram_and_vram(comfy):
    _server, worker, make = comfy
    client = await make()
    events, _unsubscribe = client.app[SERVICES].bus.queue()
    history = client.app[SERVICES].system.history
    prompt_id = await execute(client)
    worker.start_next()
    started = history_now()
    gpu = {"index": 0, "utilization_percent": 90, "memory_total_gb": 24.0, "memory_percent": None,
           "temperature_c": None, "power_w": None}
    for used, comfyui in ((6.5, True), (9.25, True)):  # two samples while it runs: ComfyUI's GPU fills up
        history.add({"timestamp": history_now(), "cpu_percent": 50, "memory_percent": 40, "memory_used_gb": used * 2,
                     "gpu_percent": 90, "disk_used_gb": 1, "disk_total_gb": 2,
                     "gpus": [{**gpu, "memory_used_gb": used, "comfyui": comfyui},
                              {**gpu, "index": 1, "memory_used_gb": 20.0, "comfyui": False}]})
    worker.finish()

    async def completed():
        while True:
            event = await events.get()
            if event.type == "workflow_progress" and event.data["type"] == "completed":
                return event.data

    done = await asyncio.wait_for(completed(), 10)
    assert done["resources"]["peak_vram_gb"] == 9.25 and done["resources"]["peak_ram_gb"] == 18.5
    record = await call(client, "GET", f"/api/comfyui/history/{prompt_id}")
    resources = record["resources"]
    assert resources["peak_vram_gb"] == 9.25 and resources["peak_ram_gb"] == 18.5  # the GPU ComfyUI uses, not GPU 1
    assert 0 <= resources["duration_seconds"] <= history_now() - started + 1 and resources["samples"] >= 2


def history_now() -> float:
    import time

    return time.time()


async def test_every_page_hears_of_a_move(comfy):
    server, _worker, make = comfy
    client = await make()
    first, second = await execute(client), await execute(client)
    events, _unsubscribe = client.app[SERVICES].bus.queue()
    await call(client, "PATCH", f"/api/comfyui/queue/{second}", json={"before": first})  # the counts stay the same

    async def update():
        while (event := await events.get()).type != "queue_update":
            pass
        return event.data

    data = await asyncio.wait_for(update(), 10)
    assert data["queue_pending"] == 2 and comfyui_order(server) == [second, first]
