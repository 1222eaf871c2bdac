"""Command line: `comfy-dashboard` (serve, the default)."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from . import __version__
from .app import create_app
from .comfy.folders import ensure_model_folders
from .config import ConfigError, Settings

log = logging.getLogger("dashboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfy-dashboard",
        description="ComfyUI Dashboard: presets, downloads, models, queue and system status.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the dashboard server (the default)")
    for target in (parser, serve):
        _add_server_flags(target)
    return parser


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server (each flag is also an environment variable)")
    group.add_argument("--host", help="address to listen on [DASHBOARD_HOST, default 127.0.0.1]")
    group.add_argument("--port", help="port to listen on [DASHBOARD_PORT, default 8080]")
    group.add_argument("--workspace", help="workspace folder [DASHBOARD_WORKSPACE, default ./workspace]")
    group.add_argument("--models-dir", help="models folder [DASHBOARD_MODELS_DIR, default <workspace>/models]")
    group.add_argument("--data-dir", help="state folder [DASHBOARD_DATA_DIR, default <workspace>/.dashboard]")
    group.add_argument("--comfyui-url", help="a ComfyUI to control, e.g. http://127.0.0.1:8188 [COMFYUI_URL]")
    group.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the command line's flags winning."""
    return Settings.from_env(
        host=args.host, port=args.port, workspace=args.workspace, models_dir=args.models_dir,
        data_dir=args.data_dir, comfyui_url=args.comfyui_url,
    )


def serve(settings: Settings) -> int:
    """Run the standalone server until SIGINT or SIGTERM."""
    ensure_model_folders(settings.models_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    url = f"http://{_url_host(settings.host)}:{settings.port}/"

    def announce(_message: str) -> None:
        print(f"ComfyUI Dashboard {__version__} serving on {url}", flush=True)

    web.run_app(app, host=settings.host, port=settings.port, print=announce, access_log=None,
                shutdown_timeout=5)
    print("ComfyUI Dashboard stopped", flush=True)
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `comfy-dashboard` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"comfy-dashboard: configuration error: {exc}", file=sys.stderr)
        return 2
    return serve(settings)
