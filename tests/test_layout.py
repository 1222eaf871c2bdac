"""The house rules, checked: which way imports go, and that the wheel carries every package."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dashboard"
COMFYUI_MODULES = {"server", "execution", "nodes", "folder_paths", "comfy", "comfy_execution"}

#: module prefix -> what it may not import (beyond TYPE_CHECKING blocks)
FORBIDDEN = {
    "dashboard.errors": {"aiohttp", "dashboard"},
    "dashboard.events": {"aiohttp", "dashboard"},
    "dashboard.threads": {"aiohttp", "dashboard"},
    "dashboard.store": {"aiohttp", "dashboard.services", "dashboard.api", "dashboard.comfy"},
    "dashboard.comfy": {"dashboard.services", "dashboard.api", "dashboard.ws", "dashboard.app", "dashboard.hosting"},
    "dashboard.services": {"aiohttp.web", "dashboard.api", "dashboard.ws", "dashboard.app", "dashboard.hosting"},
    "dashboard.api": {"dashboard.ws", "dashboard.app", "dashboard.hosting"},
    "dashboard.ws": {"dashboard.app", "dashboard.hosting"},
    "dashboard.app": {"dashboard.hosting"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports outside `if TYPE_CHECKING:`, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
            for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_imports_go_one_way():
    broken = []
    for name, path in sorted(_modules().items()):
        imports = _imports(name, path)
        for owner, banned in FORBIDDEN.items():
            if _within(name, owner):
                broken += [f"{name} imports {m}" for m in sorted(imports)
                           if any(_within(m, b) for b in banned) and not _within(m, owner)]
        if not _within(name, "dashboard.comfy"):
            broken += [f"{name} imports ComfyUI's {m}" for m in sorted(imports) if m.split(".")[0] in COMFYUI_MODULES]
    assert broken == []


def test_the_wheel_lists_every_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert packages - listed == set()
