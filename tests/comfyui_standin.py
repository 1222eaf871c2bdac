"""A minimal, protocol-faithful stand-in for the parts of ComfyUI the custom node touches.

It mirrors ComfyUI 0.3.x: modules `server` (PromptServer.instance with `app`, `routes`, `loop`,
`prompt_queue`) and `folder_paths` (base_path, models_dir, get_user_directory); core routes live in
`PromptServer.instance.routes` and are added to the app, also under `/api`, only after custom nodes
have loaded, exactly as ComfyUI's `add_routes()` does. The real thing is the integration tier.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent


class PromptQueue:
    def __init__(self) -> None:
        self.running: list = []
        self.pending: list = []

    def get_current_queue_volatile(self):
        return list(self.running), list(self.pending)


class PromptServer:
    instance: PromptServer

    def __init__(self, loop, folder_names: list[str]) -> None:
        PromptServer.instance = self
        self.loop = loop
        self.app = web.Application()
        self.routes = web.RouteTableDef()
        self.prompt_queue = PromptQueue()

        @self.routes.get("/models")
        async def models(request):
            return web.json_response(folder_names)

        @self.routes.get("/ws")
        async def ws(request):
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            await socket.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}})
            await socket.close()
            return socket

    def add_routes(self) -> None:
        """What ComfyUI does after loading custom nodes: core routes, and each again under /api."""
        api_routes = web.RouteTableDef()
        for route in self.routes:
            if isinstance(route, web.RouteDef):
                api_routes.route(route.method, "/api" + route.path)(route.handler)
        self.app.add_routes(api_routes)
        self.app.add_routes(self.routes)


def install(monkeypatch, base: Path, loop) -> PromptServer:
    """Put stand-in `server` and `folder_paths` modules in sys.modules; returns the PromptServer."""
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.base_path = str(base)
    folder_paths.models_dir = str(base / "models")
    folder_paths.get_user_directory = lambda: str(base / "user")
    models, extensions = base / "models", {".safetensors", ".ckpt", ".pt"}
    folder_paths.folder_names_and_paths = {
        "checkpoints": ([str(models / "checkpoints")], extensions),
        "loras": ([str(models / "loras"), str(base / "extra" / "loras")], extensions),
        "vae": ([str(models / "vae")], extensions),
        "text_encoders": ([str(models / "text_encoders"), str(models / "clip")], extensions),
        "diffusion_models": ([str(models / "unet"), str(models / "diffusion_models")], extensions),
        "custom_nodes": ([str(base / "custom_nodes")], set()),
    }
    server = types.ModuleType("server")
    server.PromptServer = PromptServer
    prompt_server = PromptServer(loop, ["checkpoints", "loras", "vae"])
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setitem(sys.modules, "server", server)
    return prompt_server


def load_custom_node(monkeypatch, module_dir: Path = ROOT) -> types.ModuleType:
    """Exec the package's __init__.py under a mangled name, as ComfyUI's load_custom_node does."""
    name = str(module_dir).replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, module_dir / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module
