"""Execution events: ComfyUI's messages, seen by wrapping PromptServer.send, published on the bus."""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging

import pytest
from aiohttp import web
from comfyui_standin import PromptServer, Worker, clean_env, install, serve_custom_node
from support import EMPTY

from dashboard.comfy.inprocess import InProcessBackend
from dashboard.events import EventBus


@pytest.fixture
async def comfy(monkeypatch, tmp_path):
    """(stand-in server, worker, started in-process backend, bus, queue of every bus event)."""
    server = install(monkeypatch, tmp_path, asyncio.get_running_loop())
    bus = EventBus()
    backend = InProcessBackend(server)
    backend.attach(bus, max_queue=100)
    await backend.start()
    events, unsubscribe = bus.queue()
    yield server, Worker(server), backend, bus, events
    unsubscribe()
    await backend.stop()


def drain(events) -> list:
    found = []
    while not events.empty():
        found.append(events.get_nowait())
    return found


async def run_one(server, worker, backend, events, fail_node=None, interrupt=False) -> tuple[str, list]:
    """Submit, start and finish one prompt, letting ComfyUI's messages go out after each step (queue
    counts are read live when a status message passes, as ComfyUI's loop would deliver it)."""
    prompt_id = (await backend.submit(copy.deepcopy(EMPTY)))["prompt_id"]
    await server.drained()
    worker.start_next()
    await server.drained()
    if interrupt:
        await backend.interrupt()
    worker.finish(fail_node)
    await server.drained()
    return prompt_id, drain(events)


async def test_a_run_publishes_progress_output_and_queue_updates(comfy):
    server, worker, backend, _bus, events = comfy
    prompt_id, seen = await run_one(server, worker, backend, events)
    progress = [(e.data["type"], e.data["node"]) for e in seen if e.type == "workflow_progress"]
    assert progress == [("started", None), ("cached", None), ("executing", "1"), ("progress", "1"),
                        ("executing", "2"), ("progress", "2"), ("completed", None)]
    for event in seen:
        if event.type == "workflow_progress":
            assert event.channel == "workflows" and event.data["prompt_id"] == prompt_id
            assert {"prompt_id", "node", "value", "max", "type"} <= event.data.keys()
    outputs = [e for e in seen if e.type == "workflow_output"]
    assert [(e.channel, e.data) for e in outputs] == [("workflows", {
        "prompt_id": prompt_id, "node": "2",
        "output": {"images": [{"filename": "t_00001_.png", "subfolder": "", "type": "output"}]}})]
    updates = [e.data for e in seen if e.type == "queue_update"]
    assert all(e.channel == "queue" for e in seen if e.type == "queue_update")
    assert {"queue_pending": 1, "queue_running": 0, "current_task": None} in updates
    assert {"queue_pending": 0, "queue_running": 1,
            "current_task": {"prompt_id": prompt_id, "type": "image_generation"}} in updates
    assert updates[-1] == {"queue_pending": 0, "queue_running": 0, "current_task": None}
    assert all(a != b for a, b in itertools.pairwise(updates))  # only changes are published


async def test_a_failure_publishes_an_error(comfy):
    server, worker, backend, _bus, events = comfy
    prompt_id, seen = await run_one(server, worker, backend, events, fail_node="2")
    errors = [e for e in seen if e.type == "error"]
    assert len(errors) == 1 and errors[0].channel == "workflows"
    assert errors[0].data["code"] == "WORKFLOW_FAILED" and "boom" in errors[0].data["message"]
    assert errors[0].data["details"]["prompt_id"] == prompt_id and errors[0].data["details"]["node_id"] == "2"
    assert [e.data["type"] for e in seen if e.type == "workflow_progress"][-1] == "failed"


async def test_an_interruption_is_published(comfy):
    server, worker, backend, _bus, events = comfy
    prompt_id, seen = await run_one(server, worker, backend, events, interrupt=True)
    last = [e.data for e in seen if e.type == "workflow_progress"][-1]
    assert last["type"] == "interrupted" and last["prompt_id"] == prompt_id


async def test_comfyui_messages_reach_comfyui_unchanged(comfy):
    server, worker, backend, bus, events = comfy

    def vandal(event):
        if event.type == "workflow_output":
            event.data["output"]["images"].clear()

    bus.subscribe(vandal)
    await run_one(server, worker, backend, events)
    executed = [data for event, data, _sid in server.sent if event == "executed"]
    assert executed[0]["output"]["images"] == [{"filename": "t_00001_.png", "subfolder": "", "type": "output"}]
    assert all(sid == backend.client_id for event, _d, sid in server.sent if event == "executing")


async def test_a_failing_observer_never_breaks_comfyui(comfy, monkeypatch, caplog):
    server, worker, backend, _bus, events = comfy

    def explode(*_args):
        raise RuntimeError("dashboard bug")

    monkeypatch.setattr(backend.events, "handle", explode)
    with caplog.at_level(logging.ERROR):
        await run_one(server, worker, backend, events)
    assert [event for event, _d, _s in server.sent].count("execution_success") == 1  # ComfyUI still sent it
    assert "ComfyUI is unaffected" in caplog.text


async def test_stop_unwraps_send(monkeypatch, tmp_path):
    server = install(monkeypatch, tmp_path, asyncio.get_running_loop())
    backend = InProcessBackend(server)
    backend.attach(EventBus())
    await backend.start()
    assert "send" in vars(server)
    await backend.stop()
    assert "send" not in vars(server) and server.send.__func__ is PromptServer.send


async def test_mounted_in_comfyui_events_reach_the_services_bus(aiohttp_client, monkeypatch, tmp_path):
    clean_env(monkeypatch)
    _module, server, client = await serve_custom_node(monkeypatch, tmp_path, aiohttp_client)
    # The custom node is loaded under a mangled module name (its own copy of the package): find its
    # services through the sub-app it mounted.
    subapp = next(r._app for r in server.app.router.resources() if isinstance(r, web.PrefixedSubAppResource))
    services = next(value for _key, value in subapp.items() if type(value).__name__ == "Services")
    assert "send" in vars(server)  # the sub-app's startup wrapped ComfyUI's send
    events, _unsubscribe = services.bus.queue()
    response = await client.post("/dashboard/api/comfyui/execute", json={"workflow_id": "empty_image"})
    assert response.status == 200, await response.text()
    Worker(server).run_next()
    await server.drained()
    types = [e.data["type"] for e in drain(events) if e.type == "workflow_progress"]
    assert types[0] == "started" and types[-1] == "completed"
