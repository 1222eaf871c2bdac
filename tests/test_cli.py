"""The standalone server as a user runs it: `comfy-dashboard` in a fresh folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from processes import free_port

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "COMFYUI_URL"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serves_on_defaults_and_stops_cleanly(tmp_path, stop_signal):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port)], cwd=tmp_path,
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # the server announces its URL once it listens
        assert f"http://127.0.0.1:{port}/" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert json.load(response)["status"] == "healthy"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/comfyui/health", timeout=5) as response:
            raise AssertionError(f"expected 503, got {response.status}")
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
        assert json.load(exc)["error"]["code"] == "COMFYUI_UNAVAILABLE"
    finally:
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "stopped" in out
    models = tmp_path / "workspace" / "models"
    assert {"checkpoints", "loras", "vae", "text_encoders", "diffusion_models"} <= {p.name for p in models.iterdir()}
    assert (tmp_path / "workspace" / ".dashboard").is_dir()


def test_flags_place_folders(tmp_path):
    port = free_port()
    models = tmp_path / "elsewhere" / "models"
    process = subprocess.Popen(
        [sys.executable, "-m", "dashboard", "--port", str(port), "--models-dir", str(models)],
        cwd=tmp_path, env=_env(DASHBOARD_DATA_DIR=str(tmp_path / "state")), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert "serving on" in process.stdout.readline()
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert (models / "checkpoints").is_dir()
    assert (tmp_path / "state").is_dir()
    assert not (tmp_path / "workspace" / "models").exists()


def test_bad_configuration_exits_2_with_the_variable_named(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dashboard"], cwd=tmp_path, capture_output=True, text=True,
                            env=_env(DASHBOARD_MAX_DOWNLOADS="lots"), timeout=60)
    assert result.returncode == 2
    assert "DASHBOARD_MAX_DOWNLOADS" in result.stderr
    assert "Traceback" not in result.stderr
