"""The dashboard page and its files, over HTTP: served at the app's root, relative URLs only, strict assets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from comfyui_standin import clean_env, serve_custom_node
from support import MODULE_LOOP, PASSWORD

from dashboard.api.page import CSP

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "web" / "page"


@MODULE_LOOP
async def test_page_is_served_at_the_root_with_relative_urls_only(module_client):
    response = await module_client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == CSP
    html = await response.text()
    urls = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert "assets/app.js" in urls and "assets/style.css" in urls
    for url in urls:  # relative to the page, so it also works under /dashboard/ and deeper sub-paths
        assert not url.startswith(("/", "http:", "https:", "//")), url
    assert 'data-comfyui-view=""' in html  # standalone: no ComfyUI /view to show images from


@pytest.mark.parametrize(("name", "content_type"), [
    ("app.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("icon.svg", "image/svg+xml"),
])
@MODULE_LOOP
async def test_assets_have_their_content_types_and_revalidate(module_client, name, content_type):
    response = await module_client.get(f"/assets/{name}")
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    assert await response.read() == (PAGE / name).read_bytes()
    again = await module_client.get(f"/assets/{name}", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304


@pytest.mark.parametrize("name", ["index.html", "nope.js", "..%2Fapp.py", "..%2F..%2Fpyproject.toml", ".hidden.js",
                                  "APP.JS", "app.js.map", "%2Fetc%2Fpasswd", "style.css%00.js"])
@MODULE_LOOP
async def test_anything_off_the_allow_list_is_404(module_client, name):
    response = await module_client.get(f"/assets/{name}")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "NOT_FOUND"


@MODULE_LOOP
async def test_every_module_the_page_imports_is_served(module_client):
    """Walk the import graph from app.js: every import is relative (./x.js) and answers 200."""
    seen, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        response = await module_client.get(f"/assets/{name}")
        assert response.status == 200, name
        for spec in re.findall(r'^import .*? from "([^"]+)";', await response.text(), re.M):
            assert spec.startswith("./") and "/" not in spec[2:], (name, spec)
            todo.append(spec[2:])
    assert {"view-overview.js", "view-presets.js", "view-downloads.js", "view-models.js", "view-queue.js",
            "view-workflows.js", "live.js"} <= seen


def test_page_files_load_nothing_from_elsewhere():
    """No CDN, no web fonts, no absolute URLs: works offline and under any sub-path."""
    for path in PAGE.iterdir():
        text = path.read_text()
        remote = [u for u in re.findall(r"https?://[^\s\"'`)]+", text) if u != "http://www.w3.org/2000/svg"]
        assert not remote, (path.name, remote)
        assert "@import" not in text and "@font-face" not in text, path.name
        assert not re.search(r'(?:fetch|api|new URL)\(\s*["`]/', text), path.name


def test_only_the_sidebar_extension_lives_in_web_directory():
    """ComfyUI imports every .js under WEB_DIRECTORY into its editor: only the extension may be there."""
    assert sorted(p.name for p in (ROOT / "web" / "comfyui").rglob("*") if p.is_file()) == ["dashboard_sidebar.js"]
    source = (ROOT / "web" / "comfyui" / "dashboard_sidebar.js").read_text()
    assert "api.api_base" in source and "/dashboard" in source
    assert "setInterval" not in source  # live through the WebSocket, no polling


async def test_page_and_assets_are_public_and_not_rate_limited(make_client):
    client = await make_client(enable_auth=True, admin_password=PASSWORD, rate_limit=2)
    for _ in range(5):
        assert (await client.get("/")).status == 200
        assert (await client.get("/assets/app.js")).status == 200
    assert (await client.get("/api/presets")).status == 401


async def test_websocket_authenticates_by_the_session_cookie(make_client):
    """What the page does: log in with session: true, then open /ws with nothing but the cookie."""
    client = await make_client(enable_auth=True, admin_password=PASSWORD)
    response = await client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD, "session": True})
    assert response.status == 200
    origin = str(client.make_url("")).rstrip("/")
    async with client.ws_connect("/ws", headers={"Origin": origin}) as socket:
        await socket.send_json({"type": "subscribe", "channels": ["system"], "id": 1})
        assert (await socket.receive_json(timeout=5))["type"] == "subscribed"
        assert (await socket.receive_json(timeout=5))["type"] == "snapshot"
    # and the page's state-changing calls pass the cookie rules: same origin, JSON body
    paused = await client.post("/api/downloads/dl_x/pause", json={}, headers={"Origin": origin})
    assert paused.status == 404  # reached the handler


async def test_inside_comfyui_the_page_is_at_dashboard_and_shows_comfyui_images(aiohttp_client, monkeypatch, tmp_path):
    clean_env(monkeypatch)
    _module, _server, client = await serve_custom_node(monkeypatch, tmp_path, aiohttp_client)
    response = await client.get("/dashboard/")
    assert response.status == 200
    assert 'data-comfyui-view="../view"' in await response.text()  # /dashboard/ + ../view = ComfyUI's /view
    assert (await client.get("/dashboard/assets/app.js")).status == 200
    assert (await client.get("/dashboard/assets/nope.js")).status == 404
