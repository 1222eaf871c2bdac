"""A real `python -m dashboard` server in a subprocess, for tests of what survives a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from processes import free_port

ROOT = Path(__file__).resolve().parent.parent


def call(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_until(condition, timeout: float = 60):
    """Poll `condition` until it returns something truthy (a condition with a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


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
        return call(self.url + "/api/downloads")["downloads"][0]

    def stop(self, sig=signal.SIGTERM) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        self.log.close()


def presets_command(workspace: Path, hub_url: str, *args: str) -> subprocess.CompletedProcess:
    """`comfy-dashboard presets ARGS` on `workspace`, downloading from the hub at `hub_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "HF_", "PRESET_"))}
    env.update(PYTHONPATH=str(ROOT), HF_ENDPOINT=hub_url, DASHBOARD_OFFICIAL_TEMPLATES="false")
    return subprocess.run([sys.executable, "-m", "dashboard", "presets", *args, "--workspace", str(workspace)],
                          env=env, capture_output=True, text=True, timeout=120)
