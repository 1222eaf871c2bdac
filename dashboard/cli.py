"""Command line: `comfy-dashboard` (serve, the default), `presets list|status|plan|install` and `users add`.

A problem found at start (a malformed setting, a folder that cannot be used, an address that
cannot be listened on) is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import sqlite3
import sys
from pathlib import Path

from . import __version__, provision
from .comfy.extra_paths import load_extra_model_paths
from .comfy.folders import ensure_model_folders
from .config import ConfigError, Settings
from .hosting import StartupError, bind, serve_standalone
from .services.auth import NOBODY_CAN_LOG_IN

#: Every settings flag: its argparse options. Each but --log-level is also an environment variable.
FLAGS: dict[str, dict] = {
    "--host": {"help": "address to listen on [DASHBOARD_HOST, default 127.0.0.1]"},
    "--port": {"help": "port to listen on, 0 for any free one [DASHBOARD_PORT, default 8080]"},
    "--dev": {"action": "store_true",
              "help": "development: pages from any origin may call the API; never on a shared network "
                      "[DASHBOARD_DEV, default off]"},
    "--comfyui-url": {"help": "a ComfyUI to control, e.g. http://127.0.0.1:8188 [COMFYUI_URL]"},
    "--workspace": {"help": "workspace folder [DASHBOARD_WORKSPACE, default ./workspace]"},
    "--models-dir": {"help": "models folder [DASHBOARD_MODELS_DIR, default <workspace>/models]"},
    "--data-dir": {"help": "state folder [DASHBOARD_DATA_DIR, default <workspace>/.dashboard]"},
    "--extra-model-paths": {"metavar": "YAML", "help": "more model folders, in ComfyUI's extra_model_paths.yaml "
                                                       "format [DASHBOARD_EXTRA_MODEL_PATHS]"},
    "--log-level": {"choices": ["DEBUG", "INFO", "WARNING", "ERROR"], "help": "what to log [default INFO]"},
}
#: The flags of the commands that do not listen.
PRESETS_FLAGS = ("--workspace", "--models-dir", "--data-dir", "--extra-model-paths", "--log-level")
USERS_FLAGS = ("--workspace", "--data-dir", "--log-level")
#: Loggers of HTTP clients that log every request at INFO.
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "urllib3", "huggingface_hub")


def build_parser() -> argparse.ArgumentParser:
    """The `comfy-dashboard` command line."""
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
    status.add_argument("preset_ids", nargs="+", metavar="ID", help="preset ids, as `presets list` shows them")
    plan = actions.add_parser("plan", help="what installing presets would download, whether it fits, whether "
                                           "HF_TOKEN opens gated files; non-zero exit if one would fail")
    plan.add_argument("preset_ids", nargs="+", metavar="ID", help="preset ids, as `presets list` shows them")
    plan.add_argument("--json", action="store_true", help="print the plans as JSON, as the API answers them")
    install = actions.add_parser("install", help="install presets, with a progress bar; non-zero exit on failure")
    install.add_argument("preset_ids", nargs="+", metavar="ID", help="preset ids, as `presets list` shows them")
    install.add_argument("--force", action="store_true", help="fetch again files the dashboard did not verify")
    install.add_argument("--priority", choices=["high", "normal", "low"], default="normal",
                         help="place among queued downloads [default normal]")
    users = commands.add_parser("users", help="manage dashboard users (for ENABLE_AUTH)")
    user_actions = users.add_subparsers(dest="action", required=True)
    add_user = user_actions.add_parser("add", help="create or replace a user; asks for the password")
    add_user.add_argument("username", help="the name to log in with")
    add_user.add_argument("--role", choices=["administrator", "viewer"], default="viewer",
                          help="an administrator may change things, a viewer only look [default viewer]")
    add_user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for target in (parser, serve):
        _add_flags(target, tuple(FLAGS))
    for target in (listing, status, install):
        _add_flags(target, PRESETS_FLAGS)
    _add_flags(add_user, USERS_FLAGS)
    return parser


def _add_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    # SUPPRESS: a flag given before the command is not reset by the command's own parser.
    group = parser.add_argument_group("settings (a flag wins over its environment variable)",
                                      argument_default=argparse.SUPPRESS)
    for name in names:
        group.add_argument(name, **FLAGS[name])


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the command line's flags winning.

    Raises ConfigError for a malformed value (naming its flag or variable), or a malformed
    extra_model_paths.yaml.
    """
    fields = [name[2:].replace("-", "_") for name in FLAGS if name != "--log-level"]
    settings = Settings.from_env(flags={name: getattr(args, name, None) for name in fields})
    if settings.extra_model_paths is not None:
        load_extra_model_paths(settings.extra_model_paths)  # read again by the services; a bad file stops here
    return settings


def prepare_folders(settings: Settings, models: bool = True) -> None:
    """Create the models folders (unless `models` is false) and the data folder.

    Raises StartupError when one is a file, is under a file, or cannot be written.
    """
    if models:
        _usable_folder(settings.models_dir, "models folder")
        try:
            ensure_model_folders(settings.models_dir)
        except OSError as exc:
            raise StartupError(f"cannot create the model folder {exc.filename}: {exc.strerror}") from None
    _usable_folder(settings.data_dir, "data folder")


def _usable_folder(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else exc.strerror or str(exc)
        raise StartupError(f"cannot use {path} as the {what}: {reason}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"cannot use {path} as the {what}: it is not writable")


def check_login_possible(settings: Settings) -> None:
    """With ENABLE_AUTH, someone must be able to log in: raises ConfigError when nobody could
    (StartupError when the users cannot be read)."""
    if not settings.enable_auth or settings.admin_password:
        return
    try:
        users = provision.has_users(settings)
    except sqlite3.Error as exc:
        raise StartupError(f"cannot read the users in {settings.data_dir}: {exc}") from None
    if not users:
        raise ConfigError(NOBODY_CAN_LOG_IN)


def serve(settings: Settings) -> int:
    """Run the standalone server until SIGINT or SIGTERM. Raises StartupError or ConfigError at start."""
    prepare_folders(settings)
    check_login_possible(settings)
    sockets = bind(settings.host, settings.port)
    with contextlib.suppress(KeyboardInterrupt):  # where signals cannot be handled by the loop
        asyncio.run(serve_standalone(settings, sockets, _announce))
    print("ComfyUI Dashboard stopped", flush=True)
    return 0


def _announce(url: str) -> None:
    print(f"ComfyUI Dashboard {__version__} serving on {url}", flush=True)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `comfy-dashboard` console script."""
    args = build_parser().parse_args(argv)
    _setup_logging(getattr(args, "log_level", "INFO"))
    try:
        settings = settings_from_args(args)
        if args.command == "presets":
            prepare_folders(settings)
            return provision.run(settings, args.action, getattr(args, "preset_ids", []),
                                 force=getattr(args, "force", False), priority=getattr(args, "priority", "normal"),
                                 as_json=getattr(args, "json", False))
        if args.command == "users":
            prepare_folders(settings, models=False)
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
            if not password:
                print("comfy-dashboard: the password must not be empty", file=sys.stderr)
                return 2
            return provision.add_user(settings, args.username, args.role, password)
        return serve(settings)
    except ConfigError as exc:
        print(f"comfy-dashboard: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"comfy-dashboard: {exc}", file=sys.stderr)
        return 1
