"""A minimal, protocol-faithful stand-in for the parts of ComfyUI the dashboard touches.

It mirrors ComfyUI 0.3.64 (server.py, execution.py, main.py's prompt_worker): modules `server`
(PromptServer.instance with `app`, `routes`, `loop`, `number`, `prompt_queue`, `send`/`send_sync`
and the HTTP API `/prompt`, `/queue`, `/history`, `/interrupt`, `/system_stats`, `/ws`),
`execution` (`validate_prompt`, async, 3 args, with ComfyUI's error shapes) and `nodes`
(`interrupt_processing`), plus `folder_paths`. Core routes live in `PromptServer.instance.routes`
and are added to the app, also under `/api`, only after custom nodes have loaded, exactly as
ComfyUI's `add_routes()` does. `Worker` plays ComfyUI's prompt worker, one step at a time, sending
the messages ComfyUI sends. The real thing is the integration tier.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import heapq
import importlib.util
import json
import mimetypes
import os
import sys
import threading
import time
import types
import uuid
from pathlib import Path

from aiohttp import web
from live_server import serving_in_thread

ROOT = Path(__file__).resolve().parent.parent
MAXIMUM_HISTORY_SIZE = 10000

#: Node types this ComfyUI knows: required inputs (name -> type) and whether it is an output node.
NODE_TYPES = {
    "EmptyImage": ({"width": "INT", "height": "INT", "batch_size": "INT", "color": "INT"}, False),
    "ImageInvert": ({"image": "IMAGE"}, False),
    "SaveImage": ({"images": "IMAGE", "filename_prefix": "STRING"}, True),
    "PreviewImage": ({"images": "IMAGE"}, True),
    "CheckpointLoaderSimple": ({"ckpt_name": "COMBO"}, False),
}
_interrupted = threading.Event()


def interrupt_processing(value: bool = True) -> None:
    """nodes.interrupt_processing: a global flag the running prompt checks."""
    if value:
        _interrupted.set()
    else:
        _interrupted.clear()


async def validate_prompt(prompt_id, prompt, partial_execution_list):
    """execution.validate_prompt: (valid, error, good_outputs, node_errors), with ComfyUI's shapes."""
    outputs = []
    for x in prompt:
        if "class_type" not in prompt[x]:
            return (False, {"type": "invalid_prompt", "message": "Cannot execute because a node is missing the "
                            "class_type property.", "details": f"Node ID '#{x}'", "extra_info": {}}, [], {})
        if prompt[x]["class_type"] not in NODE_TYPES:
            return (False, {"type": "invalid_prompt", "message": f"Cannot execute because node "
                            f"{prompt[x]['class_type']} does not exist.", "details": f"Node ID '#{x}'",
                            "extra_info": {}}, [], {})
        if NODE_TYPES[prompt[x]["class_type"]][1] and (partial_execution_list is None or x in partial_execution_list):
            outputs.append(x)
    if not outputs:
        return (False, {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                        "extra_info": {}}, [], {})
    node_errors: dict = {}
    good = []
    for output in outputs:
        bad = _validate_node(prompt, output, set())
        if not bad:
            good.append(output)
        for node_id, reasons in bad.items():
            entry = node_errors.setdefault(node_id, {"errors": reasons, "dependent_outputs": [],
                                                     "class_type": prompt[node_id]["class_type"]})
            entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{r['message']}: {r['details']}" for e in node_errors.values() for r in e["errors"])
        return (False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                        "details": details, "extra_info": {}}, [], node_errors)
    return (True, None, good, node_errors)


def _validate_node(prompt, node_id, seen) -> dict:
    if node_id in seen:
        return {}
    seen.add(node_id)
    node = prompt[node_id]
    required, _output = NODE_TYPES[node["class_type"]]
    reasons, bad = [], {}
    for name, kind in required.items():
        value = node["inputs"].get(name)
        if value is None:
            reasons.append({"type": "required_input_missing", "message": "Required input is missing",
                            "details": name, "extra_info": {"input_name": name}})
        elif isinstance(value, list):
            if len(value) != 2 or str(value[0]) not in prompt:
                reasons.append({"type": "bad_linked_input", "message": "Bad linked input, must be a length-2 list "
                                "of [node_id, slot_index]", "details": name, "extra_info": {"input_name": name}})
            else:
                bad.update(_validate_node(prompt, str(value[0]), seen))
        elif kind == "INT" and not isinstance(value, int):
            reasons.append({"type": "invalid_input_type", "message": "Failed to convert an input value to a INT "
                            "value", "details": f"{name}, {value}", "extra_info": {"input_name": name}})
    if reasons:
        bad[node_id] = reasons
    return bad


class PromptQueue:
    """execution.PromptQueue, with its locking, heap and history."""

    def __init__(self, server) -> None:
        self.server = server
        self.mutex = threading.RLock()
        self.task_counter = 0
        self.queue: list = []
        self.currently_running: dict = {}
        self.history: dict = {}
        self.flags: dict = {}

    def set_flag(self, name, data) -> None:
        """What ComfyUI's POST /free sets: `unload_models`, `free_memory`, read by the worker."""
        with self.mutex:
            self.flags[name] = data

    def put(self, item) -> None:
        with self.mutex:
            heapq.heappush(self.queue, item)
            self.server.queue_updated()

    def get(self):
        """Like ComfyUI's, without blocking: None when the queue is empty."""
        with self.mutex:
            if not self.queue:
                return None
            item = heapq.heappop(self.queue)
            i = self.task_counter
            self.currently_running[i] = copy.deepcopy(item)
            self.task_counter += 1
            self.server.queue_updated()
            return item, i

    def task_done(self, item_id, history_result, status) -> None:
        with self.mutex:
            prompt = self.currently_running.pop(item_id)
            if len(self.history) > MAXIMUM_HISTORY_SIZE:
                self.history.pop(next(iter(self.history)))
            self.history[prompt[1]] = {"prompt": prompt, "outputs": {}, "status": copy.deepcopy(status)}
            self.history[prompt[1]].update(history_result)
            self.server.queue_updated()

    def get_current_queue_volatile(self):
        with self.mutex:
            return list(self.currently_running.values()), copy.copy(self.queue)

    def get_tasks_remaining(self) -> int:
        with self.mutex:
            return len(self.queue) + len(self.currently_running)

    def wipe_queue(self) -> None:
        with self.mutex:
            self.queue = []
            self.server.queue_updated()

    def delete_queue_item(self, function) -> bool:
        with self.mutex:
            for x in range(len(self.queue)):
                if function(self.queue[x]):
                    if len(self.queue) == 1:
                        self.wipe_queue()
                    else:
                        self.queue.pop(x)
                        heapq.heapify(self.queue)
                    self.server.queue_updated()
                    return True
        return False

    def get_history(self, prompt_id=None, max_items=None, offset=-1, map_function=None):
        with self.mutex:
            if prompt_id is None:
                return copy.deepcopy(self.history)
            if prompt_id in self.history:
                return {prompt_id: copy.deepcopy(self.history[prompt_id])}
            return {}


class PromptServer:
    instance: PromptServer

    def __init__(self, loop, folder_names: list[str] | None = None, directories: dict[str, Path] | None = None) -> None:
        PromptServer.instance = self
        self.loop = loop
        self.app = web.Application()
        self.routes = web.RouteTableDef()
        self.prompt_queue = PromptQueue(self)
        self.number = 0
        self.client_id = None
        self.last_node_id = None
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.on_prompt_handlers: list = []
        self.sent: list[tuple] = []  # every message that reached send_json, for tests
        self._messages: collections.deque = collections.deque()
        self._drain: asyncio.Task | None = None
        folder_names = folder_names or ["checkpoints", "loras", "vae"]
        routes = self.routes
        self.app.on_shutdown.append(self._close_sockets)

        @routes.get("/models")
        async def models(request):
            return web.json_response(folder_names)

        @routes.get("/ws")
        async def websocket_handler(request):
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            sid = request.rel_url.query.get("clientId", "")
            if sid:
                self.sockets.pop(sid, None)
            else:
                sid = uuid.uuid4().hex
            self.sockets[sid] = ws
            try:
                await self.send("status", {"status": self.get_queue_info(), "sid": sid}, sid)
                async for _message in ws:
                    pass
            finally:
                self.sockets.pop(sid, None)
            return ws

        @routes.get("/view")
        async def view_image(request):
            # ComfyUI's /view without previews and channels: `directories` are its output/input/temp folders.
            query = request.rel_url.query
            if "filename" not in query:
                return web.Response(status=404)
            filename = query["filename"]
            if not filename or filename[0] == "/" or ".." in filename:
                return web.Response(status=400)
            output_dir = (directories or {}).get(query.get("type", "output"))
            if output_dir is None:
                return web.Response(status=400)
            output_dir = os.path.abspath(output_dir)
            if "subfolder" in query:
                full_output_dir = os.path.join(output_dir, query["subfolder"])
                if os.path.commonpath((os.path.abspath(full_output_dir), output_dir)) != output_dir:
                    return web.Response(status=403)
                output_dir = full_output_dir
            file = os.path.join(output_dir, os.path.basename(filename))
            if not os.path.isfile(file):
                return web.Response(status=404)
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            if content_type in {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript",
                                "text/css"}:
                content_type = "application/octet-stream"
            return web.FileResponse(file, headers={"Content-Disposition": f'filename="{os.path.basename(filename)}"',
                                                   "Content-Type": content_type})

        @routes.get("/system_stats")
        async def system_stats(request):
            return web.json_response({"system": {"os": "posix", "comfyui_version": "0.3.64-standin"}, "devices": []})

        @routes.get("/prompt")
        async def get_prompt(request):
            return web.json_response(self.get_queue_info())

        @routes.get("/queue")
        async def get_queue(request):
            running, pending = self.prompt_queue.get_current_queue_volatile()
            return web.json_response({"queue_running": running, "queue_pending": pending})

        @routes.get("/history/{prompt_id}")
        async def get_history_prompt_id(request):
            return web.json_response(self.prompt_queue.get_history(prompt_id=request.match_info["prompt_id"]))

        @routes.post("/prompt")
        async def post_prompt(request):
            json_data = self.trigger_on_prompt(await request.json())
            if "number" in json_data:
                number = float(json_data["number"])
            else:
                number = self.number
                if json_data.get("front"):
                    number = -number
                self.number += 1
            if "prompt" not in json_data:
                error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                         "extra_info": {}}
                return web.json_response({"error": error, "node_errors": {}}, status=400)
            prompt = json_data["prompt"]
            prompt_id = str(json_data.get("prompt_id", uuid.uuid4()))
            valid = await validate_prompt(prompt_id, prompt, None)
            extra_data = json_data.get("extra_data", {})
            if "client_id" in json_data:
                extra_data["client_id"] = json_data["client_id"]
            if valid[0]:
                self.prompt_queue.put((number, prompt_id, prompt, extra_data, valid[2]))
                return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": valid[3]})
            return web.json_response({"error": valid[1], "node_errors": valid[3]}, status=400)

        @routes.post("/queue")
        async def post_queue(request):
            json_data = await request.json()
            if json_data.get("clear"):
                self.prompt_queue.wipe_queue()
            for id_to_delete in json_data.get("delete", []):
                self.prompt_queue.delete_queue_item(lambda a, i=id_to_delete: a[1] == i)
            return web.Response(status=200)

        @routes.post("/free")
        async def post_free(request):
            json_data = await request.json()
            for flag in ("unload_models", "free_memory"):
                if json_data.get(flag, False):
                    self.prompt_queue.set_flag(flag, json_data[flag])
            return web.Response(status=200)

        @routes.post("/interrupt")
        async def post_interrupt(request):
            try:
                json_data = await request.json()
            except json.JSONDecodeError:
                json_data = {}
            prompt_id = json_data.get("prompt_id")
            running, _pending = self.prompt_queue.get_current_queue_volatile()
            if not prompt_id or any(item[1] == prompt_id for item in running):
                interrupt_processing()
            return web.Response(status=200)

    def add_routes(self) -> None:
        """What ComfyUI does after loading custom nodes: core routes, and each again under /api."""
        api_routes = web.RouteTableDef()
        for route in self.routes:
            if isinstance(route, web.RouteDef):
                api_routes.route(route.method, "/api" + route.path)(route.handler)
        self.app.add_routes(api_routes)
        self.app.add_routes(self.routes)

    async def _close_sockets(self, _app) -> None:
        """Connections end when the server goes away (ComfyUI's process exits)."""
        for ws in list(self.sockets.values()):
            await ws.close()

    def get_queue_info(self) -> dict:
        return {"exec_info": {"queue_remaining": self.prompt_queue.get_tasks_remaining()}}

    def trigger_on_prompt(self, json_data):
        for handler in self.on_prompt_handlers:
            json_data = handler(json_data)
        return json_data

    async def send(self, event, data, sid=None):
        if isinstance(data, (bytes, bytearray)):
            return
        await self.send_json(event, data, sid)

    async def send_json(self, event, data, sid=None):
        self.sent.append((event, data, sid))
        message = {"type": event, "data": data}
        targets = list(self.sockets.values()) if sid is None else [self.sockets[sid]] if sid in self.sockets else []
        for ws in targets:
            with contextlib.suppress(ConnectionError, RuntimeError):  # as send_socket_catch_exception
                await ws.send_json(message)

    def send_sync(self, event, data, sid=None):
        """Thread-safe; messages reach `send` in order on the loop, as ComfyUI's publish_loop does."""
        self.loop.call_soon_threadsafe(self._enqueue, (event, data, sid))

    def queue_updated(self):
        self.send_sync("status", {"status": self.get_queue_info()})

    def _enqueue(self, message) -> None:
        self._messages.append(message)
        if self._drain is None or self._drain.done():
            self._drain = self.loop.create_task(self._publish())

    async def _publish(self) -> None:
        while self._messages:
            await self.send(*self._messages.popleft())

    async def drained(self, timeout: float = 10) -> None:
        """Wait until every message sent so far went through `send` (a condition, not a sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.sleep(0)  # let call_soon_threadsafe callbacks run
            if not self._messages and (self._drain is None or self._drain.done()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("messages were not delivered")
            if self._drain is not None:
                await asyncio.wait([self._drain], timeout=deadline - time.monotonic())


class Worker:
    """main.prompt_worker + execution.PromptExecutor, one prompt at a time, driven by the test."""

    def __init__(self, server: PromptServer) -> None:
        self.server = server
        self.current = None

    def start_next(self):
        """Take the next prompt and start it (execution_start, execution_cached); returns its id or None."""
        taken = self.server.prompt_queue.get()
        if taken is None:
            return None
        self.current = taken
        (item, _i) = taken
        interrupt_processing(False)
        self.server.client_id = item[3].get("client_id")
        self.messages: list = []
        self._message("execution_start", {"prompt_id": item[1]}, broadcast=False)
        self._message("execution_cached", {"nodes": [], "prompt_id": item[1]}, broadcast=False)
        return item[1]

    def finish(self, fail_node: str | None = None) -> str:
        """Run the started prompt's nodes; `fail_node` raises there. Returns success, error or interrupted."""
        (item, item_id) = self.current
        server, prompt_id, prompt = self.server, item[1], item[2]
        outputs, executed, outcome = {}, [], "success"
        for node_id, node in prompt.items():
            if _interrupted.is_set():
                self._message("execution_interrupted", {"prompt_id": prompt_id, "node_id": node_id,
                                                        "node_type": node["class_type"], "executed": executed},
                              broadcast=True)
                outcome = "interrupted"
                break
            server.last_node_id = node_id
            server.send_sync("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id},
                             server.client_id)
            if node_id == fail_node:
                self._message("execution_error", {
                    "prompt_id": prompt_id, "node_id": node_id, "node_type": node["class_type"], "executed": executed,
                    "exception_message": "boom", "exception_type": "RuntimeError", "traceback": ["..."],
                    "current_inputs": {}, "current_outputs": []}, broadcast=False)
                outcome = "error"
                break
            server.send_sync("progress", {"value": 1, "max": 1, "prompt_id": prompt_id, "node": node_id},
                             server.client_id)
            if NODE_TYPES[node["class_type"]][1]:
                prefix = node["inputs"].get("filename_prefix", "ComfyUI")
                output = {"images": [{"filename": f"{prefix}_00001_.png", "subfolder": "", "type": "output"}]}
                outputs[node_id] = output
                server.send_sync("executed", {"node": node_id, "display_node": node_id, "output": output,
                                              "prompt_id": prompt_id}, server.client_id)
            executed.append(node_id)
        else:
            self._message("execution_success", {"prompt_id": prompt_id}, broadcast=False)
        server.last_node_id = None
        status = {"status_str": "success" if outcome == "success" else "error", "completed": outcome == "success",
                  "messages": self.messages}
        server.prompt_queue.task_done(item_id, {"outputs": outputs, "meta": {}}, status)
        if server.client_id is not None:
            server.send_sync("executing", {"node": None, "prompt_id": prompt_id}, server.client_id)
        self.current = None
        return outcome

    def run_next(self, fail_node: str | None = None) -> str | None:
        """Start and finish the next prompt; returns its id, or None when the queue is empty."""
        prompt_id = self.start_next()
        if prompt_id is not None:
            self.finish(fail_node)
        return prompt_id

    def _message(self, event: str, data: dict, broadcast: bool) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append((event, data))
        if self.server.client_id is not None or broadcast:
            self.server.send_sync(event, data, self.server.client_id)


class ServedComfyUI:
    """A stand-in ComfyUI on a real loopback port, for the remote backend; can stop and start again."""

    def __init__(self, port: int = 0, directories: dict[str, Path] | None = None) -> None:
        self.port = port
        self.directories = directories  # its output/input/temp folders, for /view
        self.server: PromptServer | None = None
        self.worker: Worker | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ServedComfyUI:
        """Start a fresh ComfyUI (empty queue and history, as after a restart) on the same port."""
        self.server = PromptServer(asyncio.get_running_loop(), directories=self.directories)
        self.server.add_routes()
        self.worker = Worker(self.server)
        self._runner = web.AppRunner(self.server.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


#: The model folder types of ComfyUI 0.3.64's folder_paths.py, in its order (it has no `latent_upscale_models`).
COMFYUI_0_3_64_FOLDERS = ("checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
                          "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
                          "upscale_models", "hypernetworks", "photomaker", "classifiers", "model_patches",
                          "audio_encoders")
#: Folder types that also read an older folder name, as ComfyUI's folder_paths.py lays them out.
_LEGACY = {"text_encoders": ["text_encoders", "clip"], "diffusion_models": ["unet", "diffusion_models"],
           "controlnet": ["controlnet", "t2i_adapter"]}


def install(monkeypatch, base: Path, loop, folder_types: tuple[str, ...] | None = None) -> PromptServer:
    """Put stand-in `server`, `execution`, `nodes` and `folder_paths` modules in sys.modules; returns the server.

    `folder_types` (e.g. COMFYUI_0_3_64_FOLDERS) replaces the few model folders it has by default.
    """
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.base_path = str(base)
    folder_paths.models_dir = str(base / "models")
    folder_paths.get_user_directory = lambda: str(base / "user")
    folders = {kind: str(base / kind) for kind in ("output", "input", "temp")}
    folder_paths.get_directory_by_type = folders.get
    models, extensions = base / "models", {".safetensors", ".ckpt", ".pt"}
    folder_paths.folder_names_and_paths = {
        "checkpoints": ([str(models / "checkpoints")], extensions),
        "loras": ([str(models / "loras"), str(base / "extra" / "loras")], extensions),
        "vae": ([str(models / "vae")], extensions),
        "text_encoders": ([str(models / "text_encoders"), str(models / "clip")], extensions),
        "diffusion_models": ([str(models / "unet"), str(models / "diffusion_models")], extensions),
        "custom_nodes": ([str(base / "custom_nodes")], set()),
    }
    if folder_types is not None:
        folder_paths.folder_names_and_paths = {
            kind: ([str(models / name) for name in _LEGACY.get(kind, [kind])], extensions) for kind in folder_types}
        folder_paths.folder_names_and_paths["custom_nodes"] = ([str(base / "custom_nodes")], set())
    server = types.ModuleType("server")
    server.PromptServer = PromptServer
    execution = types.ModuleType("execution")
    execution.validate_prompt = validate_prompt
    execution.PromptQueue = PromptQueue
    nodes = types.ModuleType("nodes")
    nodes.interrupt_processing = interrupt_processing
    nodes.NODE_CLASS_MAPPINGS = dict.fromkeys(NODE_TYPES)
    prompt_server = PromptServer(loop, ["checkpoints", "loras", "vae"])
    for name, module in (("folder_paths", folder_paths), ("server", server), ("execution", execution),
                         ("nodes", nodes)):
        monkeypatch.setitem(sys.modules, name, module)
    interrupt_processing(False)
    return prompt_server


def install_model_management(monkeypatch, device: object, total_bytes: int, free_bytes: int) -> None:
    """Put a stand-in `comfy.model_management` in sys.modules: ComfyUI computes on `device` (a torch-like
    object with `type` and `index`), with its memory functions answering these sizes."""
    comfy = types.ModuleType("comfy")
    management = types.ModuleType("comfy.model_management")
    management.get_torch_device = lambda: device
    management.get_total_memory = lambda dev=None, torch_total_too=False: total_bytes
    management.get_free_memory = lambda dev=None, torch_free_too=False: free_bytes
    comfy.model_management = management
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.model_management", management)


def load_custom_node(monkeypatch, module_dir: Path = ROOT) -> types.ModuleType:
    """Exec the package's __init__.py under a mangled name, as ComfyUI's load_custom_node does."""
    name = str(module_dir).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, module_dir / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


#: The variables that would point the dashboard elsewhere than the stand-in's folders.
DASHBOARD_ENV = ("DASHBOARD_PORT", "DASHBOARD_HOST", "DASHBOARD_MODELS_DIR", "DASHBOARD_DATA_DIR",
                 "DASHBOARD_WORKSPACE", "DASHBOARD_EXTRA_MODEL_PATHS", "COMFYUI_URL")


def clean_env(monkeypatch) -> None:
    """Unset the machine's dashboard settings for this test."""
    for var in DASHBOARD_ENV:
        monkeypatch.delenv(var, raising=False)


async def serve_custom_node(monkeypatch, base: Path, aiohttp_client, folder_types: tuple[str, ...] | None = None):
    """The stand-in with this package loaded as a custom node and its core routes added: (module, server, client)."""
    server = install(monkeypatch, base, asyncio.get_running_loop(), folder_types)
    module = load_custom_node(monkeypatch)
    server.add_routes()
    return module, server, await aiohttp_client(server.app)


# ---- ComfyUI's frontend, as far as an extension sees it ----

#: The custom node's folder name: its WEB_DIRECTORY is served at /extensions/<this>/.
EXTENSION_DIR = "comfyui-dashboard"

_FRONTEND_APP = """
// The frontend's extension API: registerExtension (setup runs once the app is up), a sidebar tab
// toggled by a button labelled with its tooltip (render() gets a new element on every open, destroy()
// runs on close; sidebarTab.activeSidebarTabId names the open one), toasts, the graph (serialize()
// gives the workflow as the editor saves it; loadGraphData() replaces it, then runs every extension's
// afterConfigureGraph), and commands (executed ones are recorded in window.commandsRun).
const extensions = [];
let graphData = { nodes: [], links: [], version: 0.4 };
window.commandsRun = [];
export const app = {
  registerExtension(extension) { extensions.push(extension); },
  graph: { serialize: () => JSON.parse(JSON.stringify(graphData)) },
  async loadGraphData(data) {
    graphData = JSON.parse(JSON.stringify(data));
    for (const extension of extensions) if (extension.afterConfigureGraph) await extension.afterConfigureGraph([]);
  },
  extensionManager: {
    sidebarTab: { activeSidebarTabId: null },
    command: { async execute(id) { window.commandsRun.push(id); } },
    registerSidebarTab(tab) {
      let open = null;
      const button = document.createElement("button");
      button.setAttribute("aria-label", tab.tooltip);
      button.textContent = tab.title;
      button.addEventListener("click", () => {
        if (open) {
          open.remove();
          open = null;
          app.extensionManager.sidebarTab.activeSidebarTabId = null;
          if (tab.destroy) tab.destroy();
          return;
        }
        open = document.createElement("div");
        app.extensionManager.sidebarTab.activeSidebarTabId = tab.id;
        tab.render(open); // as ComfyUI's frontend does: before the element is in the page
        document.getElementById("sidebar").append(open);
      });
      document.getElementById("tabs").append(button);
    },
    toast: {
      add({ severity, summary, detail }) {
        const item = document.createElement("div");
        item.className = "toast";
        item.setAttribute("role", severity === "error" ? "alert" : "status");
        const title = document.createElement("strong");
        title.textContent = summary;
        item.append(title, " ", detail || "");
        document.getElementById("toasts").append(item);
      },
    },
  },
};
window.app = app;
export async function start() {
  for (const extension of extensions) if (extension.setup) await extension.setup();
}
"""
_FRONTEND_API = 'export const api = { api_base: "", addEventListener() {} };\n'
_FRONTEND_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ComfyUI</title></head>
<body><nav id="tabs"></nav><aside id="sidebar"></aside><div id="toasts"></div>
<script type="module">
import {{ start }} from "/scripts/app.js";
await import("/extensions/{EXTENSION_DIR}/dashboard_sidebar.js");
await start();
</script></body></html>
"""


def add_frontend(server: PromptServer) -> None:
    """Serve a minimal ComfyUI editor page at `/` that loads this package's web extension, as ComfyUI does."""
    scripts = {"app.js": _FRONTEND_APP, "api.js": _FRONTEND_API}

    async def page(request):
        return web.Response(text=_FRONTEND_PAGE, content_type="text/html")

    async def script(request):
        name = request.match_info["name"]
        if name not in scripts:
            raise web.HTTPNotFound()
        return web.Response(text=scripts[name], content_type="text/javascript")

    server.app.router.add_get("/", page)
    server.app.router.add_get("/scripts/{name}", script)
    server.app.router.add_static(f"/extensions/{EXTENSION_DIR}", ROOT / "web" / "comfyui")


@contextlib.contextmanager
def served_custom_node(monkeypatch, base: Path, folder_types: tuple[str, ...] | None = None):
    """The stand-in with this package as a custom node and the frontend page, on a loopback port in a thread.

    For tests that are not async (a browser); yields the URL.
    """

    async def build() -> web.Application:
        server = install(monkeypatch, base, asyncio.get_running_loop(), folder_types)
        load_custom_node(monkeypatch)
        server.add_routes()
        add_frontend(server)
        return server.app

    with serving_in_thread(build, "comfyui-standin") as url:
        yield url
