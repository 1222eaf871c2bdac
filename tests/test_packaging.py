"""`pip install .` gives a working standalone server: the wheel carries the presets, workflows and page."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

from processes import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_serves_the_catalogue_and_the_page(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("comfyui_dashboard-*.whl"))
    venv.create(tmp_path / "venv", with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    _borrow_dependencies(python)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, timeout=300)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "PYTHONPATH"))}
    env["DASHBOARD_OFFICIAL_TEMPLATES"] = "false"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([str(tmp_path / "venv" / "bin" / "comfy-dashboard"), "--port", str(port)],
                                  cwd=run_dir, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = server.stdout.readline()
        assert "serving on" in line, f"the server did not start; its stderr:\n{log_path.read_text()}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/presets", timeout=10) as response:
            presets = json.load(response)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/workflows", timeout=10) as response:
            workflows = json.load(response)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            page = response.read().decode()
    finally:
        server.terminate()
        server.wait(30)
    assert presets["total"] >= 56
    assert workflows["total"] >= 9
    assert "<html" in page.lower()
    location = subprocess.run([str(python), "-c", "import dashboard; print(dashboard.__file__)"], cwd=run_dir,
                              env=env, capture_output=True, text=True, check=True).stdout
    assert str(tmp_path / "venv") in location  # the wheel's copy answered, not the checkout


def _borrow_dependencies(python: Path) -> None:
    """Let the venv of `python` import this interpreter's installed packages (aiohttp, ...).

    Plain paths in a .pth file: the directories are searched, but the .pth files in them (an editable
    install of this checkout) are not run, so `dashboard` comes from the venv's own wheel, listed first.
    """
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    dirs = [d for d in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(d)]
    Path(purelib, "borrowed-dependencies.pth").write_text("".join(f"{d}\n" for d in dirs))
