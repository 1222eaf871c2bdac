"""Running workflows through the API with the in-process backend, on the ComfyUI stand-in."""

from __future__ import annotations

import asyncio
import re

import pytest
from comfyui_standin import Worker, install
from support import EMPTY, call

from dashboard.comfy.inprocess import InProcessBackend
from dashboard.comfy.protocol import PRIORITY_STEP

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
async def comfy(make_client, monkeypatch, tmp_path):
    """(stand-in PromptServer, its worker, a client of the standalone app on the in-process backend)."""
    server = install(monkeypatch, tmp_path / "comfyui", asyncio.get_running_loop())
    client = await make_client(InProcessBackend(server))
    return server, Worker(server), client


async def execute(client, workflow=EMPTY, status: int = 200, **extra):
    return await call(client, "POST", "/api/comfyui/execute", status, json={"workflow": workflow, **extra})


async def test_execute_queues_on_comfyuis_own_queue(comfy):
    server, _worker, client = comfy
    body = await execute(client)
    assert body["status"] == "queued" and body["priority"] == 0 and body["number"] == 0
    running, pending = server.prompt_queue.get_current_queue_volatile()
    assert running == [] and [item[1] for item in pending] == [body["prompt_id"]]
    _number, _id, prompt, extra_data, outputs = pending[0]
    assert prompt == EMPTY and outputs == ["2"]
    assert extra_data["client_id"].startswith("dashboard-")  # so ComfyUI emits its events to no browser
    assert (await execute(client))["number"] == 1  # ComfyUI's own counter, as its POST /prompt uses


async def test_comfyuis_validation_errors_come_back_as_invalid_workflow(comfy):
    server, _worker, client = comfy
    broken = {**EMPTY, "1": {"class_type": "EmptyImage", "inputs": {"width": 64}}}
    body = await execute(client, broken, 400)
    error = body["error"]
    assert error["code"] == "INVALID_WORKFLOW"
    assert error["details"]["error"]["type"] == "prompt_outputs_failed_validation"
    node_error = error["details"]["node_errors"]["1"]
    assert node_error["class_type"] == "EmptyImage"
    assert {e["details"] for e in node_error["errors"]} == {"height", "batch_size", "color"}
    unknown = await execute(client, {"1": {"class_type": "NoSuchNode", "inputs": {}}}, 400)
    assert "NoSuchNode does not exist" in unknown["error"]["message"]
    assert server.prompt_queue.get_current_queue_volatile()[1] == []


@pytest.mark.parametrize("workflow", [[1, 2], "text", {}, {"1": {"inputs": {}}}, {"1": {"class_type": "X"}},
                                      {"1": {"class_type": "X", "inputs": []}}, {"1": 5}, None,
                                      {"nodes": [], "links": []}])
async def test_structurally_invalid_workflows_never_reach_comfyui(comfy, workflow):
    server, _worker, client = comfy
    body = await execute(client, workflow, 400)
    assert body["error"]["code"] == "INVALID_WORKFLOW"
    assert server.number == 0  # ComfyUI was not asked


@pytest.mark.parametrize("body", [{}, {"workflow": EMPTY, "workflow_id": "empty_image"}, {"workflow": EMPTY,
                                  "priority": 1001}, {"workflow": EMPTY, "priority": "high"},
                                  {"workflow": EMPTY, "priority": 1.5}, {"prompt": EMPTY}])
async def test_bad_execute_requests_are_invalid_request(comfy, body):
    _server, _worker, client = comfy
    answer = await call(client, "POST", "/api/comfyui/execute", 400, json=body)
    assert answer["error"]["code"] == "INVALID_REQUEST"


async def test_execute_a_library_workflow_by_id(comfy):
    server, _worker, client = comfy
    body = await call(client, "POST", "/api/comfyui/execute", json={"workflow_id": "empty_image"})
    item = server.prompt_queue.get_current_queue_volatile()[1][0]
    assert item[1] == body["prompt_id"] and item[2]["1"]["class_type"] == "EmptyImage"
    item[2]["1"]["inputs"]["width"] = 1  # ComfyUI got a copy: the library is untouched
    detail = await call(client, "GET", "/api/workflows/empty_image")
    assert detail["workflow"]["1"]["inputs"]["width"] == 512
    missing = await call(client, "POST", "/api/comfyui/execute", 404, json={"workflow_id": "nope"})
    assert missing["error"]["code"] == "WORKFLOW_NOT_FOUND"


async def test_queue_full_past_the_limit(make_client, monkeypatch, tmp_path):
    server = install(monkeypatch, tmp_path / "comfyui", asyncio.get_running_loop())
    client = await make_client(InProcessBackend(server), max_queue=2)
    await execute(client)
    await execute(client)
    body = await execute(client, status=429)
    assert body["error"]["code"] == "QUEUE_FULL" and body["error"]["details"]["limit"] == 2
    Worker(server).run_next()  # one leaves the queue: room again
    await execute(client)


async def test_priorities_order_the_pending_queue_and_the_runs(comfy):
    _server, worker, client = comfy
    submitted = {}
    for name, priority in [("a", 0), ("b", 0), ("c", 5), ("d", -3), ("e", 5), ("f", 0)]:
        body = await execute(client, priority=priority)
        assert body["priority"] == priority
        submitted[body["prompt_id"]] = name
    queue = await call(client, "GET", "/api/comfyui/queue")
    assert queue["queue_running"] == []
    order = [submitted[item["prompt_id"]] for item in queue["queue_pending"]]
    assert order == ["c", "e", "a", "b", "f", "d"]
    assert [item["priority"] for item in queue["queue_pending"]] == [5, 5, 0, 0, 0, -3]
    assert queue["queue_pending"][0]["number"] == 2 - 5 * PRIORITY_STEP
    assert all(item["type"] == "image_generation" for item in queue["queue_pending"])
    ran = []
    while (prompt_id := worker.run_next()) is not None:
        ran.append(submitted[prompt_id])
    assert ran == order  # ComfyUI's own heap runs them in the order the API showed


async def test_prompts_queued_elsewhere_show_without_priority(comfy):
    server, _worker, client = comfy
    server.prompt_queue.put((-7, "from-the-editor", EMPTY, {"client_id": "browser"}, ["2"]))
    body = await execute(client, priority=1)
    queue = await call(client, "GET", "/api/comfyui/queue")
    assert [(i["prompt_id"], i["priority"]) for i in queue["queue_pending"]] == [
        (body["prompt_id"], 1), ("from-the-editor", None)]


async def test_history_follows_a_prompt_to_completion(comfy):
    _server, worker, client = comfy
    prompt_id = (await execute(client))["prompt_id"]
    pending = await call(client, "GET", f"/api/comfyui/history/{prompt_id}")
    assert pending["status"] == "pending" and pending["outputs"] == {"images": []} and pending["started"] is None
    worker.start_next()
    assert (await call(client, "GET", f"/api/comfyui/history/{prompt_id}"))["status"] == "running"
    worker.finish()
    done = await call(client, "GET", f"/api/comfyui/history/{prompt_id}")
    assert done["status"] == "completed" and done["error"] is None and done["priority"] == 0
    assert done["outputs"]["images"] == [{"filename": "t_00001_.png", "subfolder": "", "type": "output", "node": "2"}]
    assert done["node_outputs"] == {"2": {"images": [{"filename": "t_00001_.png", "subfolder": "",
                                                      "type": "output"}]}}
    assert ISO.fullmatch(done["started"]) and ISO.fullmatch(done["completed"])
    assert done["started"] <= done["completed"]


async def test_history_of_failed_and_interrupted_prompts(comfy):
    _server, worker, client = comfy
    failed = (await execute(client))["prompt_id"]
    worker.run_next(fail_node="2")
    body = await call(client, "GET", f"/api/comfyui/history/{failed}")
    assert body["status"] == "failed"
    assert body["error"] == {"message": "boom", "exception_type": "RuntimeError", "node_id": "2",
                             "node_type": "SaveImage"}
    stopped = (await execute(client))["prompt_id"]
    worker.start_next()
    assert await call(client, "POST", "/api/comfyui/interrupt") == {"status": "interrupted"}
    worker.finish()
    body = await call(client, "GET", f"/api/comfyui/history/{stopped}")
    assert body["status"] == "interrupted" and body["completed"] is not None
    assert body["error"]["message"] == "Execution was interrupted"


async def test_unknown_prompt_is_not_found(comfy):
    _server, _worker, client = comfy
    body = await call(client, "GET", "/api/comfyui/history/nope", 404)
    assert body["error"]["code"] == "PROMPT_NOT_FOUND"


async def test_interrupt_when_idle_says_so(comfy):
    _server, _worker, client = comfy
    assert await call(client, "POST", "/api/comfyui/interrupt") == {"status": "idle"}


async def test_clear_pending_running_and_all(comfy):
    server, worker, client = comfy
    for _ in range(3):
        await execute(client)
    worker.start_next()
    assert await call(client, "DELETE", "/api/comfyui/queue") == {"cleared": 2, "status": "success"}
    running, pending = server.prompt_queue.get_current_queue_volatile()
    assert len(running) == 1 and pending == []
    assert await call(client, "DELETE", "/api/comfyui/queue?type=running") == {"cleared": 1, "status": "success"}
    assert worker.finish() == "interrupted"
    await execute(client)
    worker.start_next()
    await execute(client)
    assert await call(client, "DELETE", "/api/comfyui/queue?type=all") == {"cleared": 2, "status": "success"}
    assert worker.finish() == "interrupted"
    assert server.prompt_queue.get_current_queue_volatile() == ([], [])
    assert await call(client, "DELETE", "/api/comfyui/queue?type=all") == {"cleared": 0, "status": "success"}
    bad = await call(client, "DELETE", "/api/comfyui/queue?type=everything", 400)
    assert bad["error"]["code"] == "INVALID_REQUEST"


async def test_on_prompt_hooks_run_as_in_comfyuis_post_prompt(comfy):
    server, _worker, client = comfy

    def hook(request):
        request["prompt"]["2"]["inputs"]["filename_prefix"] = "hooked"
        return request

    server.on_prompt_handlers.append(hook)
    await execute(client)
    assert server.prompt_queue.get_current_queue_volatile()[1][0][2]["2"]["inputs"]["filename_prefix"] == "hooked"


@pytest.mark.parametrize(("method", "url", "body"), [
    ("POST", "/api/comfyui/execute", {"workflow": EMPTY}), ("GET", "/api/comfyui/queue", None),
    ("GET", "/api/comfyui/history/x", None), ("DELETE", "/api/comfyui/queue", None),
    ("POST", "/api/comfyui/interrupt", None)])
async def test_without_comfyui_every_call_is_unavailable(client, method, url, body):
    answer = await call(client, method, url, 503, json=body)
    assert answer["error"]["code"] == "COMFYUI_UNAVAILABLE"
