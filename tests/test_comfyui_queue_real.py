"""Integration tier: running workflows through the dashboard inside a real ComfyUI.

To keep prompts pending deterministically, a test-only custom node (`write_gate_node`: written into
this ComfyUI's custom_nodes, never shipped) holds ComfyUI's worker until a file appears, and gives
way to an interrupt as ComfyUI's own nodes do. Tests poll conditions with deadlines; none sleeps to wait.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from real_comfyui import ROOT, requires_comfyui, running_comfyui, write_gate_node
from support import call, empty_image, until

from dashboard.comfy.remote import RemoteBackend
from dashboard.services.workflow_format import required_models

pytestmark = [requires_comfyui, pytest.mark.comfyui]

#: Seconds between polls of the API (each one counts against the rate limit).
POLL = 0.05
SHIPPED = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "workflows").glob("*.json"))}


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui-queue")
    write_gate_node(base)
    for data in SHIPPED.values():  # placeholder model files: enough for ComfyUI's validation, never loaded
        for model in required_models(data["workflow"], "api"):
            target = base / "models" / model["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    with running_comfyui(base) as url:
        yield url, base


class Session:
    def __init__(self, http: aiohttp.ClientSession, url: str, base: Path) -> None:
        self.http, self.url, self.base = http, url, base

    async def call(self, method: str, path: str, status: int = 200, **kwargs):
        return await call(self.http, method, self.url + path, status, **kwargs)

    async def execute(self, status: int = 200, **body):
        return await self.call("POST", "/dashboard/api/comfyui/execute", status, json=body)

    async def status(self, prompt_id: str) -> str:
        return (await self.call("GET", f"/dashboard/api/comfyui/history/{prompt_id}"))["status"]

    async def finished(self, prompt_id: str, timeout: float = 60) -> dict:
        async def done():
            body = await self.call("GET", f"/dashboard/api/comfyui/history/{prompt_id}")
            return body if body["status"] not in ("pending", "running") else None

        return await until(done, timeout, f"prompt {prompt_id} to finish", POLL)

    async def idle(self) -> None:
        async def empty():
            queue = await self.call("GET", "/dashboard/api/comfyui/queue")
            return not queue["queue_running"] and not queue["queue_pending"]

        await until(empty, 60, "an idle queue", POLL)

    @contextlib.asynccontextmanager
    async def gate(self):
        """A prompt holding ComfyUI's worker while the block runs; yields its prompt id."""
        release = self.base / f"gate-{uuid.uuid4().hex}"
        prompt_id = (await self.execute(workflow={"1": {"class_type": "DashboardTestGate",
                                                        "inputs": {"path": str(release)}}}))["prompt_id"]

        async def running():
            queue = await self.call("GET", "/dashboard/api/comfyui/queue")
            return [i["prompt_id"] for i in queue["queue_running"]] == [prompt_id]

        try:
            await until(running, 60, "the gate to hold the worker", POLL)
            yield prompt_id
        finally:
            release.touch()
            await self.idle()


@pytest.fixture
async def comfy(comfyui):
    url, base = comfyui
    async with aiohttp.ClientSession() as http:
        session = Session(http, url, base)
        await session.idle()
        yield session


async def test_a_model_free_workflow_runs_to_completion(comfy):
    queued = await comfy.execute(workflow=empty_image("dash_real"))
    assert queued["status"] == "queued" and isinstance(queued["number"], int)
    done = await comfy.finished(queued["prompt_id"])
    assert done["status"] == "completed" and done["error"] is None
    [image] = done["outputs"]["images"]
    assert image["type"] == "output" and image["filename"].startswith("dash_real") and image["node"] == "2"
    assert (comfy.base / "output" / image["subfolder"] / image["filename"]).is_file()
    assert done["started"] <= done["completed"]
    own = await comfy.call("GET", f"/history/{queued['prompt_id']}")  # ComfyUI's own history agrees
    assert own[queued["prompt_id"]]["status"]["status_str"] == "success"


async def test_a_library_workflow_runs_by_id(comfy):
    queued = await comfy.execute(workflow_id="empty_image")
    assert (await comfy.finished(queued["prompt_id"]))["status"] == "completed"


async def test_an_invalid_workflow_gets_comfyuis_node_errors(comfy):
    body = await comfy.execute(400, workflow={**empty_image("x"), "1": {"class_type": "EmptyImage",
                                                                          "inputs": {"width": 64}}})
    assert body["error"]["code"] == "INVALID_WORKFLOW"
    node_errors = body["error"]["details"]["node_errors"]
    assert node_errors["1"]["class_type"] == "EmptyImage"
    assert {e["type"] for e in node_errors["1"]["errors"]} == {"required_input_missing"}
    missing = await comfy.execute(400, workflow={"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert "NoSuchNode" in missing["error"]["message"]


async def test_priorities_reorder_the_pending_queue(comfy):
    names = {}
    async with comfy.gate():
        for name, priority in [("a", 0), ("b", 0), ("c", 5), ("d", -3), ("e", 5)]:
            body = await comfy.execute(workflow=empty_image(f"prio_{name}"), priority=priority)
            names[body["prompt_id"]] = name
        ours = await comfy.call("GET", "/dashboard/api/comfyui/queue")
        order = [names[i["prompt_id"]] for i in ours["queue_pending"]]
        assert order == ["c", "e", "a", "b", "d"]
        own = await comfy.call("GET", "/queue")  # ComfyUI's own queue holds the same order in its numbers
        assert [names[i[1]] for i in sorted(own["queue_pending"], key=lambda i: i[0])] == order
    history = await comfy.call("GET", "/history")  # in the order the prompts finished
    assert [names[pid] for pid in history if pid in names] == ["c", "e", "a", "b", "d"]


async def test_clear_pending_and_interrupt(comfy):
    async with comfy.gate() as gate:
        pending = [(await comfy.execute(workflow=empty_image(f"clear_{i}")))["prompt_id"] for i in range(3)]
        assert await comfy.call("DELETE", "/dashboard/api/comfyui/queue") == {"cleared": 3, "status": "success"}
        queue = await comfy.call("GET", "/dashboard/api/comfyui/queue")
        assert queue["queue_pending"] == [] and [i["prompt_id"] for i in queue["queue_running"]] == [gate]
        assert await comfy.call("POST", "/dashboard/api/comfyui/interrupt") == {"status": "interrupted"}
        stopped = await comfy.finished(gate)
        assert stopped["status"] == "interrupted" and stopped["error"]["node_type"] == "DashboardTestGate"
    for prompt_id in pending:
        await comfy.call("GET", f"/dashboard/api/comfyui/history/{prompt_id}", 404)
    assert await comfy.call("POST", "/dashboard/api/comfyui/interrupt") == {"status": "idle"}


async def test_clear_all_interrupts_the_running_prompt_too(comfy):
    async with comfy.gate() as gate:
        await comfy.execute(workflow=empty_image("all_1"))
        assert await comfy.call("DELETE", "/dashboard/api/comfyui/queue?type=all") == {"cleared": 2,
                                                                                        "status": "success"}
        assert (await comfy.finished(gate))["status"] == "interrupted"


async def test_shipped_workflows_pass_comfyuis_own_validation(comfy):
    known = set(await comfy.call("GET", "/object_info"))
    checked, skipped = [], []
    async with comfy.gate():
        for workflow_id, data in SHIPPED.items():
            missing = {n["class_type"] for n in data["workflow"].values()} - known
            if missing:  # e.g. audio nodes where ComfyUI's Python lacks torchaudio
                skipped.append((workflow_id, sorted(missing)))
                continue
            body = await comfy.execute(workflow_id=workflow_id)
            assert body["node_errors"] == {}, (workflow_id, body)
            checked.append(workflow_id)
        cleared = await comfy.call("DELETE", "/dashboard/api/comfyui/queue")
        assert cleared["cleared"] == len(checked)
    assert len(checked) >= 8, (checked, skipped)


async def test_execution_events_reach_the_dashboards_websocket(comfy):
    """The wrapped PromptServer.send feeds the bus in a real ComfyUI (seen through the /ws hub)."""
    async with comfy.http.ws_connect(comfy.url + "/dashboard/ws") as ws:  # a missing hub fails the test
        await ws.send_json({"type": "subscribe", "channels": ["workflows"]})
        while (await ws.receive_json(timeout=10)).get("type") != "subscribed":
            pass
        prompt_id = (await comfy.execute(workflow=empty_image("events")))["prompt_id"]
        expected = {("workflow_progress", "completed"), ("workflow_output", None)}
        seen: set[tuple[str, str | None]] = set()
        deadline = time.monotonic() + 60
        while not expected <= seen:  # the hub may coalesce progress ahead of the output: order is not checked
            message = await ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
            data = message.get("data") or {}
            if data.get("prompt_id") == prompt_id:
                seen.add((message["type"], data.get("type")))


async def test_a_standalone_dashboard_streams_comfyuis_output_files(comfy, make_client):
    prompt_id = (await comfy.execute(workflow=empty_image("dashboard-remote-view")))["prompt_id"]
    image = (await comfy.finished(prompt_id))["outputs"]["images"][0]
    client = await make_client(RemoteBackend(comfy.url))
    response = await client.get("/api/comfyui/view", params={k: image[k] for k in ("filename", "subfolder", "type")})
    assert response.status == 200 and response.content_type == "image/png"
    assert await response.read() == (comfy.base / "output" / image["subfolder"] / image["filename"]).read_bytes()
    missing = await client.get("/api/comfyui/view", params={"filename": "dashboard-nothing_00001_.png"})
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "NOT_FOUND"


async def test_a_prompt_queued_in_comfyui_counts_the_models_it_loads(comfy):
    checkpoint = next(m for data in SHIPPED.values() for m in required_models(data["workflow"], "api")
                      if m["type"] == "checkpoints")  # a placeholder: the prompt fails loading it, but it ran
    workflow = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint["name"]}},
                "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
                "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
                "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "used"}}}
    info_path = f"/dashboard/api/models/{checkpoint['path']}/info"
    before = (await comfy.call("GET", info_path))["use_count"]
    queued = await comfy.call("POST", "/prompt", json={"prompt": workflow, "client_id": "an-editor"})
    await comfy.finished(queued["prompt_id"])

    async def counted():
        info = await comfy.call("GET", info_path)
        return info if info["use_count"] == before + 1 else None

    info = await until(counted, 30, "the prompt's checkpoint counted", POLL)
    assert info["last_used"] is not None


async def comfyui_pending(comfy) -> list[str]:
    """ComfyUI's own view of its pending prompts, in the order it runs them."""
    own = await comfy.call("GET", "/queue")
    return [item[1] for item in sorted(own["queue_pending"], key=lambda i: i[0])]


async def test_hold_release_move_pause_and_free_prompts_queued_in_comfyui(comfy):
    async with comfy.gate():
        ids = [(await comfy.call("POST", "/prompt", json={"prompt": empty_image(f"ctl_{n}"), "client_id": "editor"}))[
            "prompt_id"] for n in range(3)]
        assert await comfyui_pending(comfy) == ids
        await comfy.call("POST", f"/dashboard/api/comfyui/queue/{ids[1]}/hold")
        assert await comfyui_pending(comfy) == [ids[0], ids[2]]
        await comfy.call("POST", f"/dashboard/api/comfyui/queue/{ids[1]}/release")
        assert await comfyui_pending(comfy) == ids  # its number: its place
        await comfy.call("PATCH", f"/dashboard/api/comfyui/queue/{ids[2]}", json={"before": ids[0]})
        assert await comfyui_pending(comfy) == [ids[2], ids[0], ids[1]]  # ComfyUI's own queue, reordered
        paused = await comfy.call("POST", "/dashboard/api/comfyui/queue/pause")
        assert paused["held"] == 3 and await comfyui_pending(comfy) == []
        late = (await comfy.call("POST", "/prompt", json={"prompt": empty_image("ctl_late")}))["prompt_id"]
        assert await comfyui_pending(comfy) == []  # queued while paused: it waits in the dashboard
        queue = await comfy.call("GET", "/dashboard/api/comfyui/queue")
        assert queue["paused"] and [h["prompt_id"] for h in queue["held"]] == [ids[2], ids[0], ids[1], late]
        resumed = await comfy.call("POST", "/dashboard/api/comfyui/queue/resume")
        assert resumed["released"] == [ids[2], ids[0], ids[1], late] and await comfyui_pending(comfy) == resumed[
            "released"]
    freed = await comfy.call("POST", "/dashboard/api/comfyui/free", json={"unload_models": True, "free_memory": True})
    assert freed["status"] == "requested"
    done = await comfy.finished((await comfy.execute(workflow=empty_image("after_free")))["prompt_id"])
    assert done["status"] == "completed" and done["resources"]["duration_seconds"] >= 0


async def test_pending_prompts_come_back_after_comfyui_restarts(tmp_path):
    write_gate_node(tmp_path)
    release = tmp_path / "never"
    with running_comfyui(tmp_path) as url:
        async with aiohttp.ClientSession() as http:
            comfy = Session(http, url, tmp_path)
            gate = {"1": {"class_type": "DashboardTestGate", "inputs": {"path": str(release)}}}
            await comfy.execute(workflow=gate)  # holds the worker: what follows stays pending
            ids = [(await comfy.execute(workflow=empty_image(f"kept_{n}")))["prompt_id"] for n in range(2)]

            async def kept():
                queue = await comfy.call("GET", "/dashboard/api/comfyui/queue")
                return [p["prompt_id"] for p in queue["queue_pending"]] == ids

            await until(kept, 60, "both prompts pending", POLL)
            await until(lambda: _saved_on_disk(tmp_path, ids), 30, "the pending prompts kept", POLL)
    with running_comfyui(tmp_path) as url:  # ComfyUI started again: its queue is empty, the dashboard's is not
        async with aiohttp.ClientSession() as http:
            comfy = Session(http, url, tmp_path)
            queue = await comfy.call("GET", "/dashboard/api/comfyui/queue")
            assert queue["restored"]["prompt_ids"] == ids
            for prompt_id in ids:
                assert (await comfy.finished(prompt_id))["status"] == "completed"


def _saved_on_disk(base: Path, ids: list[str]) -> bool:
    """Whether the dashboard's database (in ComfyUI's user folder) holds these pending prompts."""
    import sqlite3

    database = base / "user" / "dashboard" / "dashboard.db"
    if not database.exists():
        return False
    with contextlib.closing(sqlite3.connect(database)) as db:
        row = db.execute("SELECT value FROM state WHERE key = 'queue.pending'").fetchone()
    return row is not None and [item[1] for item in json.loads(row[0])] == ids
