"""ComfyUI in this very process: PromptServer's queue, called directly, never over HTTP.

Submitting does what ComfyUI's own `POST /prompt` does (its on_prompt hooks, `execution.validate_prompt`,
`prompt_queue.put`), with a dashboard client id so ComfyUI emits the prompt's execution events to
no browser. Execution is observed by wrapping the async `PromptServer.instance.send`, which
ComfyUI's publish loop calls on the server loop for every message: the wrapper never mutates a
message, always awaits the original, and swallows its own errors.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import mimetypes
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..errors import InvalidWorkflow, NotFound, invalid
from ..threads import LOOP_DEFAULT, Threads
from .backend import ComfyBackend, OutputFile
from .protocol import (
    PRIORITY_KEY,
    ExecutionEvents,
    invalid_workflow,
    new_client_id,
    queue_entry,
    queue_full,
    queue_number,
    run_order,
    task_type,
)

log = logging.getLogger("dashboard.comfyui")


class InProcessBackend(ComfyBackend):
    """The backend used when the dashboard is loaded as a ComfyUI custom node."""

    kind = "in_process"

    def __init__(self, prompt_server: Any) -> None:
        self._server = prompt_server
        self.client_id = new_client_id()
        self.events = ExecutionEvents()
        self._unwrap: Callable[[], None] | None = None

    def attach(self, bus, max_queue: int = 100, threads: Threads = LOOP_DEFAULT) -> None:
        super().attach(bus, max_queue, threads)
        self.events.bus = bus

    async def start(self) -> None:
        if self._unwrap is not None:
            return
        if not callable(getattr(self._server, "send", None)):
            log.warning("This ComfyUI has no PromptServer.send to observe: no execution events on the dashboard")
            return
        self._unwrap = watch_messages(self._server, self._observe)

    async def stop(self) -> None:
        if self._unwrap is not None:
            self._unwrap()
            self._unwrap = None

    async def reachable(self) -> bool:
        return True

    async def health(self) -> dict[str, Any]:
        running, pending = self._server.prompt_queue.get_current_queue_volatile()
        return {"status": "healthy", "version": _comfyui_version(),
                "queue": {"pending": len(pending), "running": len(running)}}

    async def submit(self, workflow: dict[str, Any], priority: int = 0) -> dict[str, Any]:
        import execution

        server = self._server
        pending = len(server.prompt_queue.get_current_queue_volatile()[1])
        if pending >= self.max_queue:
            raise queue_full(pending, self.max_queue)
        sequence = server.number
        server.number += 1
        number = queue_number(priority, sequence)
        prompt_id = str(uuid.uuid4())
        request = _on_prompt(server, {"prompt": workflow, "client_id": self.client_id,
                                      "extra_data": {PRIORITY_KEY: priority}})
        prompt = request.get("prompt", workflow)
        extra_data = {**(request.get("extra_data") or {}), "client_id": self.client_id}
        try:
            result = execution.validate_prompt(prompt_id, prompt, None)
            valid, error, outputs, node_errors = await result if inspect.isawaitable(result) else result
        except Exception as exc:  # ComfyUI's own POST /prompt would answer 500; the workflow is to blame
            log.warning("ComfyUI could not validate a workflow: %s", exc, exc_info=True)
            raise InvalidWorkflow(f"ComfyUI could not validate the workflow: {exc}",
                                  {"error": {"type": "exception_during_validation", "message": str(exc)},
                                   "node_errors": {}}) from None
        if not valid:
            raise invalid_workflow(error, node_errors)
        server.prompt_queue.put((number, prompt_id, prompt, extra_data, outputs))
        return {"prompt_id": prompt_id, "number": number, "node_errors": node_errors or {}}

    async def queue(self) -> dict[str, list[dict[str, Any]]]:
        running, pending = self._server.prompt_queue.get_current_queue_volatile()
        return {"running": [queue_entry(item) for item in running],
                "pending": [queue_entry(item) for item in run_order(pending)]}

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        return self._server.prompt_queue.get_history(prompt_id=prompt_id).get(prompt_id)

    async def clear(self, kind: str) -> int:
        import nodes

        prompt_queue = self._server.prompt_queue
        cleared = 0
        if kind in ("pending", "all"):
            with prompt_queue.mutex:  # count and wipe at once: the worker thread pops under this lock
                cleared += len(prompt_queue.get_current_queue_volatile()[1])
                prompt_queue.wipe_queue()
        if kind in ("running", "all"):
            running = prompt_queue.get_current_queue_volatile()[0]
            if running:
                nodes.interrupt_processing()
                cleared += len(running)
        return cleared

    async def interrupt(self) -> bool:
        import nodes

        if not self._server.prompt_queue.get_current_queue_volatile()[0]:
            return False
        nodes.interrupt_processing()
        return True

    async def pending_items(self) -> list[list[Any]]:
        return [list(item) for item in run_order(self._server.prompt_queue.get_current_queue_volatile()[1])]

    async def take(self, prompt_id: str) -> list[Any] | None:
        queue = self._server.prompt_queue
        with queue.mutex:  # found and removed at once: the worker pops under this lock
            item = next((i for i in queue.queue if i[1] == prompt_id), None)
            if item is None or not queue.delete_queue_item(lambda i: i[1] == prompt_id):
                return None
        return list(item)

    async def put_back(self, item: list[Any]) -> dict[str, Any]:
        queue = self._server.prompt_queue
        put = queue.__dict__.get("_dashboard_put") or queue.put  # never into the hold of a paused queue
        put(tuple(item))
        return {"prompt_id": item[1], "number": item[0]}

    async def free(self, unload_models: bool, free_memory: bool) -> None:
        queue = self._server.prompt_queue
        if unload_models:
            queue.set_flag("unload_models", True)
        if free_memory:
            queue.set_flag("free_memory", True)

    def hold_new(self, hold: Callable[[list[Any]], None] | None) -> bool:
        queue = self._server.prompt_queue
        if hold is None:
            original = queue.__dict__.pop("_dashboard_put", None)
            if original is not None:
                queue.__dict__.pop("put", None)  # ComfyUI's own method again
            return True
        if "_dashboard_put" in queue.__dict__:
            return True
        original = queue.put

        def put(item: Any) -> None:
            try:
                hold(list(item))
            except Exception:  # the hold failed: the prompt goes where ComfyUI would put it
                log.exception("Could not hold a prompt of the paused queue")
                original(item)

        queue._dashboard_put = original
        queue.put = put
        return True

    def announce(self) -> None:
        self.events.forget_queue()  # published even when the counts stay (a prompt moved)
        self._queue_changed()

    def _observe(self, event: Any, data: Any, sid: Any) -> None:
        if event == "status":
            if sid is None:  # a broadcast after the queue changed (not one socket's greeting)
                self._queue_changed()
            return
        self.events.handle(event, data)

    def _queue_changed(self) -> None:
        running, pending = self._server.prompt_queue.get_current_queue_volatile()
        current = None
        if running:
            item = running[0]
            current = {"prompt_id": item[1], "type": task_type(item[2] if isinstance(item[2], dict) else {})}
        self.events.queue_changed(len(pending), len(running), current)

    @contextlib.asynccontextmanager
    async def output_file(self, filename: str, subfolder: str, kind: str) -> AsyncIterator[OutputFile]:
        """Read from ComfyUI's own folders with its `/view`'s checks (for the page on a port of our own)."""
        import folder_paths

        path, size = await self.threads.run(_output_path, folder_paths.get_directory_by_type(kind), filename,
                                            subfolder)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if content_type in _NEVER_INLINE:  # as ComfyUI does: such files download, they never render
            content_type = "application/octet-stream"
        with await self.threads.run(open, path, "rb") as file:
            yield OutputFile(content_type, size, _chunks(file, self.threads))

    def model_roots(self) -> dict[str, list[Path]]:
        """Every model folder ComfyUI knows, extra_model_paths.yaml and legacy names included."""
        import folder_paths

        return {name: [Path(p) for p in paths] for name, (paths, _ext) in folder_paths.folder_names_and_paths.items()
                if name != "custom_nodes"}

    def forget_model_folder(self, folder_type: str) -> None:
        """ComfyUI caches each folder's file list; without this its `/models/<folder>` can answer 500."""
        import folder_paths

        cache = getattr(folder_paths, "filename_list_cache", None)
        if isinstance(cache, dict):
            cache.pop(folder_type, None)

    def device_memory(self) -> dict[str, Any] | None:
        """Blocking (a CUDA call): ComfyUI's device and its memory, read with ComfyUI's own functions."""
        return _device_memory()


_NEVER_INLINE = {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css"}


#: Who makes the devices torch names by type (CUDA's are NVIDIA's or, under ROCm, AMD's).
_DEVICE_VENDORS = {"mps": "apple", "xpu": "intel", "npu": "huawei", "mlu": "cambricon"}


def _device_memory() -> dict[str, Any] | None:
    """`get_torch_device()`, `get_total_memory(dev)` and `get_free_memory(dev)` of the model_management that
    ComfyUI loaded (never imported here: outside ComfyUI there is none, and None is the answer)."""
    management = sys.modules.get("comfy.model_management")
    if management is None:
        return None
    device = management.get_torch_device()
    kind = getattr(device, "type", None) or str(device)
    torch = sys.modules.get("torch")
    vendor = _DEVICE_VENDORS.get(kind)
    if kind == "cuda" and torch is not None:
        vendor = "amd" if getattr(torch.version, "hip", None) else "nvidia"
    return {
        "type": kind,
        "index": getattr(device, "index", None),
        "name": _torch_answer(lambda: getattr(torch, kind).get_device_name(device)) or str(device),
        "vendor": vendor,
        "uuid": _torch_answer(lambda: str(torch.cuda.get_device_properties(device).uuid)) if kind == "cuda" else None,
        "total_bytes": int(management.get_total_memory(device)),
        "free_bytes": int(management.get_free_memory(device)),
    }


def _torch_answer(call: Callable[[], Any]) -> Any:
    """What torch answers, or None where it cannot (no torch, no such backend, an old version)."""
    try:
        return call()
    except Exception:
        return None


def _output_path(folder: str | None, filename: str, subfolder: str) -> tuple[str, int]:
    """Blocking: the file ComfyUI's `/view` would serve, and its size; refuses what it refuses."""
    if not filename or filename[0] == "/" or ".." in filename or folder is None:
        raise invalid("ComfyUI refuses this file name or type", filename=filename)
    folder = os.path.abspath(folder)
    inside = os.path.abspath(os.path.join(folder, subfolder))
    if os.path.commonpath((inside, folder)) != folder:
        raise invalid("The subfolder leaves ComfyUI's folder", subfolder=subfolder)
    path = os.path.join(inside, os.path.basename(filename))
    if not os.path.isfile(path):
        raise NotFound(f"ComfyUI has no file {filename!r} there", {"filename": filename,
                                                                             "subfolder": subfolder})
    return path, os.path.getsize(path)


async def _chunks(file: Any, threads: Threads, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    while chunk := await threads.run(file.read, size):
        yield chunk


def watch_messages(server: Any, observer: Callable[[Any, Any, Any], None]) -> Callable[[], None]:
    """Wrap `server.send` so `observer(event, data, sid)` sees every message first; returns the undo.

    The wrapper always awaits the original with the same arguments, and an observer error is
    logged, never raised into ComfyUI. If someone wrapped `send` after us, undoing only disarms ours.
    """
    original = server.send
    had_own = "send" in vars(server)
    armed = True

    async def send(*args: Any, **kwargs: Any) -> Any:
        if armed:
            try:
                event = args[0] if args else kwargs.get("event")
                data = args[1] if len(args) > 1 else kwargs.get("data")
                sid = args[2] if len(args) > 2 else kwargs.get("sid")
                observer(event, data, sid)
            except Exception:
                log.exception("ComfyUI Dashboard could not observe a ComfyUI message; ComfyUI is unaffected")
        return await original(*args, **kwargs)

    server.send = send

    def undo() -> None:
        nonlocal armed
        armed = False
        if vars(server).get("send") is send:
            if had_own:
                server.send = original
            else:
                del server.send  # the class's own method shows through again

    return undo


def _on_prompt(server: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Run ComfyUI's on_prompt hooks (custom nodes rewrite prompts there) as its POST /prompt does."""
    trigger = getattr(server, "trigger_on_prompt", None)
    if trigger is None:
        return request
    try:
        answer = trigger(request)
    except Exception:
        log.warning("A ComfyUI on_prompt hook failed; the workflow is queued as given", exc_info=True)
        return request
    return answer if isinstance(answer, dict) else request


def _comfyui_version() -> str | None:
    try:
        import comfyui_version
    except ImportError:
        return None
    return getattr(comfyui_version, "__version__", None)
