"""Command line: `comfy-dashboard` (serve, the default)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from aiohttp import web

from . import __version__, provision
from .app import create_app
from .comfy.extra_paths import load_extra_model_paths
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
    presets = commands.add_parser("presets", help="list, install and check presets without a server")
    actions = presets.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every preset, and whether it is installed")
    status = actions.add_parser("status", help="the install status of presets")
    status.add_argument("preset_ids", nargs="+", metavar="ID")
    install = actions.add_parser("install", help="install presets, with a progress bar; non-zero exit on failure")
    install.add_argument("preset_ids", nargs="+", metavar="ID")
    install.add_argument("--force", action="store_true", help="fetch again files the dashboard did not verify")
    install.add_argument("--priority", choices=["high", "normal", "low"], default="normal")
    users = commands.add_parser("users", help="manage dashboard users (for ENABLE_AUTH)")
    user_actions = users.add_subparsers(dest="action", required=True)
    add_user = user_actions.add_parser("add", help="create or replace a user; asks for the password")
    add_user.add_argument("username")
    add_user.add_argument("--role", choices=["administrator", "viewer"], default="viewer")
    add_user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for target in (parser, serve, listing, status, install, add_user):
        _add_server_flags(target)
    return parser


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a flag given before the command is not reset by the command's own parser.
    group = parser.add_argument_group("server (each flag is also an environment variable)",
                                      argument_default=argparse.SUPPRESS)
    group.add_argument("--host", help="address to listen on [DASHBOARD_HOST, default 127.0.0.1]")
    group.add_argument("--port", help="port to listen on [DASHBOARD_PORT, default 8080]")
    group.add_argument("--workspace", help="workspace folder [DASHBOARD_WORKSPACE, default ./workspace]")
    group.add_argument("--models-dir", help="models folder [DASHBOARD_MODELS_DIR, default <workspace>/models]")
    group.add_argument("--data-dir", help="state folder [DASHBOARD_DATA_DIR, default <workspace>/.dashboard]")
    group.add_argument("--comfyui-url", help="a ComfyUI to control, e.g. http://127.0.0.1:8188 [COMFYUI_URL]")
    group.add_argument("--extra-model-paths", metavar="YAML",
                       help="more model folders, in ComfyUI's extra_model_paths.yaml format "
                            "[DASHBOARD_EXTRA_MODEL_PATHS]")
    group.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the command line's flags winning.

    Raises ConfigError for a malformed value, or a malformed extra_model_paths.yaml.
    """
    settings = Settings.from_env(
        **{name: getattr(args, name, None) for name in ("host", "port", "workspace", "models_dir", "data_dir",
                                                        "comfyui_url", "extra_model_paths")},
    )
    if settings.extra_model_paths is not None:
        load_extra_model_paths(settings.extra_model_paths)  # read again by the services; a bad file stops here
    return settings


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
    logging.basicConfig(level=getattr(args, "log_level", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"comfy-dashboard: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "presets":
        return provision.run(settings, args.action, getattr(args, "preset_ids", []),
                             force=getattr(args, "force", False), priority=getattr(args, "priority", "normal"))
    if args.command == "users":
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
        if not password:
            print("comfy-dashboard: the password must not be empty", file=sys.stderr)
            return 2
        return provision.add_user(settings, args.username, args.role, password)
    return serve(settings)
