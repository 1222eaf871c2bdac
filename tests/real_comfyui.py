"""Start a real ComfyUI (COMFYUI_DIR + COMFYUI_PYTHON) with this package in its custom_nodes.

Frontends: by default ComfyUI serves the frontend package its venv pins. `running_comfyui(...,
frontend=...)` picks another: "pinned", "newest" (the static folder in COMFYUI_NEWEST_FRONTEND) or a
static folder path; with no `frontend`, COMFYUI_FRONTEND_ROOT (a static folder) applies when set. To run a
module against both, parametrize its ComfyUI fixture with `params=FRONTENDS` and pass
`frontend=request.param`; "newest" is skipped, with the reason, when COMFYUI_NEWEST_FRONTEND is unset or
not a frontend's static folder.
"""

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


def _is_frontend(folder: str | None) -> bool:
    return bool(folder) and (Path(folder) / "index.html").is_file()


NEWEST_FRONTEND = os.environ.get("COMFYUI_NEWEST_FRONTEND")
_NO_NEWEST = ("newest frontend: set COMFYUI_NEWEST_FRONTEND to the comfyui_frontend_package/static folder of an "
              "unpacked newest comfyui-frontend-package wheel")
if NEWEST_FRONTEND:
    _NO_NEWEST += f" ({NEWEST_FRONTEND!r} has no index.html)"
requires_newest_frontend = pytest.mark.skipif(not _is_frontend(NEWEST_FRONTEND), reason=_NO_NEWEST)
# params for a module-scoped ComfyUI fixture: `@pytest.fixture(scope="module", params=FRONTENDS)`
FRONTENDS = [pytest.param("pinned", id="pinned"),
             pytest.param("newest", id="newest", marks=requires_newest_frontend)]


def frontend_root(frontend: str | Path | None = None) -> str | None:
    """The `--front-end-root` for `frontend` ("pinned", "newest", a static folder, or None: COMFYUI_FRONTEND_ROOT
    if set), or None for the frontend ComfyUI's venv pins. Skips the test when "newest" is not available."""
    if frontend is None:
        frontend = os.environ.get("COMFYUI_FRONTEND_ROOT") or "pinned"
    if frontend == "pinned":
        return None
    if frontend == "newest":
        if not _is_frontend(NEWEST_FRONTEND):
            pytest.skip(_NO_NEWEST)
        frontend = NEWEST_FRONTEND
    if not _is_frontend(str(frontend)):
        raise ValueError(f"{frontend!r} is not a ComfyUI frontend's static folder (no index.html)")
    return str(frontend)


@contextlib.contextmanager
def running_comfyui(base: Path, env: dict[str, str] | None = None, ready_path: str = "/system_stats",
                    timeout: float = 180, frontend: str | Path | None = None) -> Iterator[str]:
    """Run ComfyUI on CPU with `base` as its base directory; yields its URL once `ready_path` answers.
    `frontend`: see `frontend_root` (by default the pinned one, or COMFYUI_FRONTEND_ROOT when set)."""
    root = frontend_root(frontend)
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / "comfyui-dashboard"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", str(base), "--disable-auto-launch"]
    if root:
        command += ["--front-end-root", root]
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
