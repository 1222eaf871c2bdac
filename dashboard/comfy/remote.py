"""A ComfyUI reached over its HTTP API (standalone mode with COMFYUI_URL).

Requests: `POST /prompt`, `GET /prompt` (queue size, before each submission), `GET /queue`, `GET /history/{id}`,
`POST /queue {delete}`, `POST /interrupt`, `GET /view` (output files, streamed through). Events: a WebSocket
at `/ws?clientId=<our client id>`, reconnected with exponential backoff whenever it drops (ComfyUI restarting,
network trouble).
ComfyUI sends execution events of a prompt only to the client that submitted it, so over this
connection the dashboard sees its own prompts' progress and every queue change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp

from ..errors import DashboardError, InvalidRequest, NotFound
from ..threads import LOOP_DEFAULT, Threads
from .backend import ComfyBackend, OutputFile, unavailable
from .protocol import (
    PRIORITY_KEY,
    ExecutionEvents,
    invalid_workflow,
    new_client_id,
    queue_entry,
    queue_full,
    queue_number,
    run_order,
    whole_number,
)

log = logging.getLogger("dashboard.comfyui")

_TIMEOUT = aiohttp.ClientTimeout(total=5, connect=2)
#: Validation of a big workflow can take a while on a busy ComfyUI.
_SUBMIT_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=2)
#: Output files (videos too) stream through; only a stalled read gives up.
_VIEW_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=2, sock_read=30)
_VIEW_CHUNK = 256 * 1024
#: Queue numbers of non-zero priorities count seconds from here (see protocol.py).
_SEQUENCE_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z


class RemoteBackend(ComfyBackend):
    """Talks to the ComfyUI at `url` (e.g. http://127.0.0.1:8188)."""

    kind = "remote"

    def __init__(self, url: str, reconnect_delay: float = 0.5, max_reconnect_delay: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.client_id = new_client_id()
        self.events = ExecutionEvents()
        self.connected = False
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._session: aiohttp.ClientSession | None = None
        self._listener: asyncio.Task | None = None
        self._refresher: asyncio.Task | None = None
        self._queue_dirty = False
        self._sequence = 0

    def attach(self, bus, max_queue: int = 100, threads: Threads = LOOP_DEFAULT) -> None:
        super().attach(bus, max_queue, threads)
        self.events.bus = bus

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        self._listener = asyncio.create_task(self._listen(), name="dashboard-comfyui-ws")

    async def stop(self) -> None:
        for task in (self._listener, self._refresher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listener = self._refresher = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reachable(self) -> bool:
        try:
            await self._request("GET", "/system_stats")
        except Exception:
            return False
        return True

    async def health(self) -> dict[str, Any]:
        stats, queue = await asyncio.gather(self._request("GET", "/system_stats"), self._request("GET", "/queue"))
        return {
            "status": "healthy",
            "version": (stats.get("system") or {}).get("comfyui_version"),
            "queue": {"pending": len(queue.get("queue_pending", [])), "running": len(queue.get("queue_running", []))},
        }

    async def submit(self, workflow: dict[str, Any], priority: int = 0) -> dict[str, Any]:
        info = await self._request("GET", "/prompt")
        remaining = int(((info or {}).get("exec_info") or {}).get("queue_remaining") or 0)
        if remaining >= self.max_queue:  # pending + running: only near the limit is the whole queue read
            pending = len((await self._request("GET", "/queue")).get("queue_pending") or [])
            if pending >= self.max_queue:
                raise queue_full(pending, self.max_queue)
        body: dict[str, Any] = {"prompt": workflow, "client_id": self.client_id,
                                "extra_data": {PRIORITY_KEY: priority}}
        if priority:  # priority 0 takes ComfyUI's own counter, exactly like its editor's prompts
            body["number"] = queue_number(priority, self._next_sequence())
        answer = await self._request("POST", "/prompt", body, timeout=_SUBMIT_TIMEOUT, refused=(400,))
        if not isinstance(answer, dict) or "prompt_id" not in answer:
            answer = answer if isinstance(answer, dict) else {}
            raise invalid_workflow(answer.get("error"), answer.get("node_errors"))
        return {"prompt_id": answer["prompt_id"], "number": whole_number(answer["number"]),
                "node_errors": answer.get("node_errors") or {}}

    async def queue(self) -> dict[str, list[dict[str, Any]]]:
        queue = await self._request("GET", "/queue")
        return {"running": [queue_entry(item) for item in queue.get("queue_running") or []],
                "pending": [queue_entry(item) for item in run_order(queue.get("queue_pending") or [])]}

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        answer = await self._request("GET", "/history/" + quote(prompt_id, safe=""))
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    async def clear(self, kind: str) -> int:
        queue = await self._request("GET", "/queue")
        cleared = 0
        if kind in ("pending", "all"):
            ids = [item[1] for item in queue.get("queue_pending") or []]
            if ids:  # by id: what was pending when asked, nothing queued since
                await self._request("POST", "/queue", {"delete": ids}, expect_json=False)
            cleared += len(ids)
        if kind in ("running", "all"):
            for item in queue.get("queue_running") or []:
                await self._request("POST", "/interrupt", {"prompt_id": item[1]}, expect_json=False)
                cleared += 1
        return cleared

    async def interrupt(self) -> bool:
        running = (await self._request("GET", "/queue")).get("queue_running") or []
        if not running:
            return False
        await self._request("POST", "/interrupt", {"prompt_id": running[0][1]}, expect_json=False)
        return True

    async def pending_items(self) -> list[list[Any]]:
        return [list(item) for item in run_order((await self._request("GET", "/queue")).get("queue_pending") or [])]

    async def take(self, prompt_id: str) -> list[Any] | None:
        item = next((i for i in await self.pending_items() if i[1] == prompt_id), None)
        if item is None:
            return None
        await self._request("POST", "/queue", {"delete": [prompt_id]}, expect_json=False)
        queue = await self._request("GET", "/queue")
        if any(i[1] == prompt_id for i in queue.get("queue_running") or []):
            return None  # ComfyUI started it before the delete arrived
        return item

    async def put_back(self, item: list[Any]) -> dict[str, Any]:
        number, prompt_id, prompt, extra_data = item[0], item[1], item[2], dict(item[3] or {})
        body = {"prompt": prompt, "prompt_id": prompt_id, "number": number, "extra_data": extra_data}
        if extra_data.get("client_id"):
            body["client_id"] = extra_data["client_id"]
        answer = await self._request("POST", "/prompt", body, timeout=_SUBMIT_TIMEOUT, refused=(400,))
        if not isinstance(answer, dict) or "prompt_id" not in answer:
            answer = answer if isinstance(answer, dict) else {}
            raise invalid_workflow(answer.get("error"), answer.get("node_errors"))
        return {"prompt_id": answer["prompt_id"], "number": whole_number(answer["number"])}

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        await self._request("POST", "/free", {"unload_models": unload_models, "free_memory": free_memory},
                            expect_json=False)

    def announce(self) -> None:
        self.events.forget_queue()  # published even when the counts stay (a prompt moved)
        self._queue_changed()

    @contextlib.asynccontextmanager
    async def output_file(self, filename: str, subfolder: str, kind: str) -> AsyncIterator[OutputFile]:
        if self._session is None:
            raise unavailable("The ComfyUI connection is not open")
        where = {"filename": filename, "subfolder": subfolder, "type": kind}
        try:
            response = await self._session.get(self.url + "/view", params=where, timeout=_VIEW_TIMEOUT)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise unavailable(f"ComfyUI at {self.url} is not responding: {exc.__class__.__name__}") from None
        async with response:
            if response.status == 404:
                raise NotFound(f"ComfyUI has no {kind} file {filename!r}", where)
            if response.status in (400, 403):
                raise InvalidRequest("ComfyUI refused this file name or subfolder", where)
            if response.status != 200:
                raise unavailable(f"ComfyUI at {self.url} answered {response.status} to GET /view")
            yield OutputFile(response.content_type, response.content_length,
                             response.content.iter_chunked(_VIEW_CHUNK))

    def _next_sequence(self) -> int:
        """Whole seconds since the epoch, one more than the last when submissions come faster."""
        self._sequence = max(int(time.time()) - _SEQUENCE_EPOCH, self._sequence + 1)
        return self._sequence

    async def _request(self, method: str, path: str, body: Any = None, *,
                       timeout: aiohttp.ClientTimeout | None = None, refused: tuple[int, ...] = (),
                       expect_json: bool = True) -> Any:
        """One call to ComfyUI; any failure to get an answer is COMFYUI_UNAVAILABLE. Statuses in
        `refused` are answers too (their JSON body is returned)."""
        if self._session is None:
            raise unavailable("The ComfyUI connection is not open")
        try:
            request = self._session.request(method, self.url + path, json=body, timeout=timeout or _TIMEOUT)
            async with request as response:
                if response.status >= 400 and response.status not in refused:
                    raise unavailable(f"ComfyUI at {self.url} answered {response.status} to {method} {path}")
                if not expect_json:
                    return None
                return await response.json(content_type=None)
        except DashboardError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise unavailable(f"ComfyUI at {self.url} is not responding: {exc.__class__.__name__}") from None

    async def _listen(self) -> None:
        """Keep a WebSocket to ComfyUI open, reconnecting with exponential backoff."""
        delay = self.reconnect_delay
        ws_url = self.url.replace("http", "ws", 1) + "/ws?clientId=" + quote(self.client_id)
        failures = 0
        while True:
            try:
                async with self._session.ws_connect(ws_url, heartbeat=30) as ws:
                    self.connected = True
                    delay, failures = self.reconnect_delay, 0
                    log.info("Connected to ComfyUI's events at %s", self.url)
                    self._connection(True)
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            self._on_text(message.data)
                        elif message.type == aiohttp.WSMsgType.ERROR:
                            break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("ComfyUI's events at %s are not reachable (%s); retrying",
                                self.url, exc.__class__.__name__)
            finally:
                if self.connected:
                    self._connection(False)
                self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay)

    def _connection(self, connected: bool) -> None:
        """`comfyui_connection {connected}` on the bus: ComfyUI came or went."""
        if self.events.bus is not None:
            self.events.bus.publish("comfyui_connection", {"connected": connected}, "queue")

    def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "status":
            self._queue_changed()
        else:
            self.events.handle(message.get("type"), message.get("data"))

    def _queue_changed(self) -> None:
        """Re-read the queue for queue_update; bursts of status messages share one read at a time."""
        if self._refresher is not None and not self._refresher.done():
            self._queue_dirty = True
            return
        self._refresher = asyncio.create_task(self._refresh_queue())

    async def _refresh_queue(self) -> None:
        while True:
            self._queue_dirty = False
            try:
                queue = await self.queue()
            except DashboardError:
                return
            running = queue["running"]
            current = {"prompt_id": running[0]["prompt_id"], "type": running[0]["type"]} if running else None
            self.events.queue_changed(len(queue["pending"]), len(running), current)
            if not self._queue_dirty:
                return
