"""A real `python -m dashboard` server in a subprocess, for tests of what survives a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from downloads_support import write_workspace_preset
from processes import free_port
from support import fetch_json

ROOT = Path(__file__).resolve().parent.parent


def big_preset(workspace: Path, size: int) -> None:
    """The user preset BIG in `workspace`: one checkpoint of `size` bytes, `org/big` on the fake hub."""
    write_workspace_preset(workspace, "BIG", [
        {"path": "checkpoints/big.safetensors", "repo": "org/big", "file": "big.safetensors", "size": size}])


class Server:
    """The server on a free port with `workspace`, downloading from the hub at `hub_url`."""

    def __init__(self, workspace: Path, hub_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "HF_", "PRESET_"))}
        env.update(PYTHONPATH=str(ROOT), HF_ENDPOINT=hub_url, DASHBOARD_OFFICIAL_TEMPLATES="false", **(extra_env or {}))
        self.log = open(workspace.parent / f"server-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--port", str(self.port), "--workspace", str(workspace)],
            env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        assert "serving on" in self.process.stdout.readline()

    def download(self) -> dict:
        return fetch_json(self.url + "/api/downloads")["downloads"][0]

    def stop(self, sig=signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        self.log.close()


def start_presets_command(workspace: Path, hub_url: str, *args: str) -> subprocess.Popen:
    """Start `comfy-dashboard presets ARGS` on `workspace`, downloading from the hub at `hub_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "HF_", "PRESET_"))}
    env.update(PYTHONPATH=str(ROOT), HF_ENDPOINT=hub_url, DASHBOARD_OFFICIAL_TEMPLATES="false")
    return subprocess.Popen([sys.executable, "-m", "dashboard", "presets", *args, "--workspace", str(workspace)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(command: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    """Wait for a started command and answer what `subprocess.run` would have."""
    try:
        stdout, stderr = command.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        command.kill()
        raise
    return subprocess.CompletedProcess(command.args, command.returncode, stdout, stderr)


def presets_command(workspace: Path, hub_url: str, *args: str) -> subprocess.CompletedProcess:
    """`comfy-dashboard presets ARGS` on `workspace`, downloading from the hub at `hub_url`."""
    return finished(start_presets_command(workspace, hub_url, *args))
