"""Start a real ComfyUI (COMFYUI_DIR + COMFYUI_PYTHON) with this package in its custom_nodes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import free_port, serving

ROOT = Path(__file__).resolve().parent.parent
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON")

requires_comfyui = pytest.mark.skipif(
    not (COMFYUI_DIR and COMFYUI_PYTHON),
    reason="real ComfyUI tier: set COMFYUI_DIR (a ComfyUI checkout) and COMFYUI_PYTHON (a Python that runs it)",
)


@contextlib.contextmanager
def running_comfyui(base: Path, env: dict[str, str] | None = None, ready_path: str = "/system_stats",
                    timeout: float = 180) -> Iterator[str]:
    """Run ComfyUI on CPU with `base` as its base directory; yields its URL once `ready_path` answers."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / "comfyui-dashboard"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(base), "--disable-auto-launch"]
    with serving(command, cwd=COMFYUI_DIR, env={**os.environ, **(env or {})}, log_path=base / "comfyui.log",
                 ready_url=url + ready_path, name="ComfyUI", timeout=timeout):
        yield url


GATE_NODE = '''
import os
import time

import comfy.model_management


class DashboardTestGate:
    """Holds ComfyUI's worker until the file at `path` exists (dashboard tests only)."""

    RETURN_TYPES = ()
    FUNCTION = "wait"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, path):
        return float("nan")

    def wait(self, path):
        deadline = time.monotonic() + 300
        while not os.path.exists(path) and time.monotonic() < deadline:
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.01)
        return {}


NODE_CLASS_MAPPINGS = {"DashboardTestGate": DashboardTestGate}
'''


def write_gate_node(base: Path) -> None:
    """Add `DashboardTestGate` to this ComfyUI's custom_nodes (tests and benchmarks only, never shipped):
    a prompt `{"class_type": "DashboardTestGate", "inputs": {"path": P}}` holds ComfyUI's worker until
    the file P exists, and gives way to an interrupt."""
    folder = base / "custom_nodes" / "dashboard_test_gate"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(GATE_NODE)


def comfyui_log(base: Path) -> str:
    return (base / "comfyui.log").read_text(errors="replace")
