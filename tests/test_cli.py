"""The standalone server as a user runs it: `comfy-dashboard` in a fresh folder."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from downloads_support import write_workspace_preset
from processes import free_port

from dashboard.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DASHBOARD_", "COMFYUI_URL", "ENABLE_AUTH", "ACCESS_PASSWORD", "HF_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _run(cwd: Path, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """`comfy-dashboard ARGS` run to its end in `cwd`."""
    return subprocess.run([sys.executable, "-m", "dashboard", *args], cwd=cwd, env=_env(**env), input=stdin,
                          capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def _serving(cwd: Path, *args: str, **env: str) -> Iterator[int]:
    """`comfy-dashboard ARGS` serving; yields the port its announcement names. Its stderr goes to cwd/stderr.log."""
    with open(cwd / "stderr.log", "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "dashboard", *args], cwd=cwd, env=_env(**env),
                                   stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        line = process.stdout.readline()
        announced = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
        assert announced, f"no announcement in {line!r}; stderr: {(cwd / 'stderr.log').read_text()}"
        yield int(announced.group(1))
    finally:
        process.terminate()
        process.communicate(timeout=20)


def _one_line_failure(result: subprocess.CompletedProcess, code: int = 1) -> str:
    """The one stderr line of a command that refused to start, with exit status `code`."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


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
    result = _run(tmp_path, DASHBOARD_MAX_DOWNLOADS="lots")
    assert "DASHBOARD_MAX_DOWNLOADS" in _one_line_failure(result, 2)


def test_a_malformed_flag_is_named_as_the_flag(tmp_path):
    result = _run(tmp_path, "--port", "abc", DASHBOARD_PORT="8080")
    assert _one_line_failure(result, 2).endswith("--port: expected a port number, got 'abc'")
    assert "DASHBOARD_PORT" not in result.stderr


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = _run(tmp_path, "--port", str(port))
    line = _one_line_failure(result)
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in line
    assert not (tmp_path / "workspace" / ".dashboard" / "dashboard.db").exists()  # nothing was started


def test_an_address_that_cannot_be_resolved_is_one_line(tmp_path):
    line = _one_line_failure(_run(tmp_path, DASHBOARD_HOST="not-a-host.invalid"))
    assert line.startswith("comfy-dashboard: cannot listen on not-a-host.invalid") and "DASHBOARD_HOST" in line


@pytest.mark.parametrize("blocked", ["workspace", "workspace/models", "workspace/.dashboard", "models/vae"])
def test_a_file_where_a_folder_should_be_is_one_line(tmp_path, blocked):
    (tmp_path / blocked).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / blocked).write_text("not a folder")
    models = ["--models-dir", str(tmp_path / "models")] if blocked.startswith("models") else []
    line = _one_line_failure(_run(tmp_path, "--port", "0", *models))
    assert line.startswith("comfy-dashboard: cannot ") and str(tmp_path / blocked) in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write in any folder")
def test_a_data_folder_that_cannot_be_written_is_one_line(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o555)
    try:
        line = _one_line_failure(_run(tmp_path, "--port", "0", "--data-dir", str(state)))
    finally:
        state.chmod(0o755)
    assert f"cannot use {state} as the data folder: it is not writable" in line


def test_port_0_announces_the_port_it_listens_on(tmp_path):
    with _serving(tmp_path, "--port", "0") as port:
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert json.load(response)["status"] == "healthy"


def test_enable_auth_with_nobody_to_log_in_refuses_to_start(tmp_path):
    line = _one_line_failure(_run(tmp_path, "--port", "0", ENABLE_AUTH="true"), 2)
    assert "DASHBOARD_ADMIN_PASSWORD" in line and "comfy-dashboard users add NAME --role administrator" in line


def test_enable_auth_starts_once_a_user_exists(tmp_path):
    added = _run(tmp_path, "users", "add", "ops", "--role", "administrator", "--password-stdin", stdin="s3cret\n")
    assert added.returncode == 0, added.stderr
    with _serving(tmp_path, "--port", "0", ENABLE_AUTH="true") as port:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/auth/login", method="POST",
                                         data=json.dumps({"username": "ops", "password": "s3cret"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["user"]["role"] == "administrator"


def test_dev_flag_lets_any_origin_call_the_api_and_warns(tmp_path):
    with _serving(tmp_path, "--port", "0", "--dev") as port:
        preflight = urllib.request.Request(f"http://127.0.0.1:{port}/api/presets", method="OPTIONS", headers={
            "Origin": "http://anywhere.example", "Access-Control-Request-Method": "GET"})
        with urllib.request.urlopen(preflight, timeout=5) as response:
            assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == "*"
    warnings = [line for line in (tmp_path / "stderr.log").read_text().splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "shared network" in warnings[0]


def test_presets_list_prints_only_the_list(tmp_path):
    result = _run(tmp_path, "presets", "list")
    assert result.returncode == 0, result.stderr
    assert "FLUX_SCHNELL_BASIC" in result.stdout
    assert result.stderr == ""  # no log lines: no NVML notice, no HTTP requests


def test_presets_install_does_not_log_each_http_request(tmp_path, hub):
    hub.add_file("org/tiny", "tiny.safetensors", size=1024 * 1024)
    write_workspace_preset(tmp_path / "workspace", "TINY", [
        {"path": "loras/tiny.safetensors", "repo": "org/tiny", "file": "tiny.safetensors", "size": 1024 * 1024}])
    result = _run(tmp_path, "presets", "install", "TINY", HF_ENDPOINT=hub.url, DASHBOARD_OFFICIAL_TEMPLATES="false")
    assert result.returncode == 0, result.stderr
    assert "TINY: installed" in result.stderr
    assert "HTTP Request" not in result.stderr


@pytest.mark.parametrize("command", [["presets"], ["presets", "list"], ["presets", "status"],
                                     ["presets", "install"], ["users", "add"]])
def test_help_of_commands_that_do_not_listen_shows_no_server_flags(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    shown = capsys.readouterr().out
    assert not {"--host", "--port", "--comfyui-url", "--dev"} & set(re.findall(r"--[a-z-]+", shown))
    if command != ["presets"]:
        assert "--workspace" in shown and "--log-level" in shown


def test_serve_help_shows_every_setting(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    shown = capsys.readouterr().out
    assert {"--host", "--port", "--dev", "--comfyui-url", "--workspace", "--models-dir", "--data-dir",
            "--extra-model-paths", "--log-level"} <= set(re.findall(r"--[a-z-]+", shown))


def test_every_flag_and_argument_has_help():
    def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    missing = [f"{parser.prog} {action.dest}" for parser in parsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert missing == []

