"""Integration tier, in ComfyUI's real editor (the frontend ComfyUI pins, and the newest one when
COMFYUI_NEWEST_FRONTEND names its static folder): a workflow that needs a model the local hub serves
is loaded; the sidebar tab installs it, and the loader's dropdown offers it without a reload.

Skipped unless COMFYUI_DIR and COMFYUI_PYTHON are set and chromium + playwright are present.
"""

from __future__ import annotations

import json

import pytest
from browser import requires_browser, screenshot, watch_errors
from hub import FakeHub, running_hub
from real_comfyui import FRONTENDS, requires_comfyui, running_comfyui

pytestmark = [requires_comfyui, requires_browser, pytest.mark.comfyui]

MB = 1024 * 1024
TOOLTIP = "ComfyUI Dashboard"
NAME = "editor_tier.safetensors"
#: The editor's own missing-models warnings (the pinned frontend's dialog, the newest one's overlay) off:
#: they cover the page, and what is tested here is the tab's.
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingModelsWarning": False,
            "Comfy.ErrorSystem.ShowMissingModels": False}


@pytest.fixture(scope="module", params=FRONTENDS)
def editor(request, tmp_path_factory):
    hub = FakeHub()
    hub_file = hub.add_file("org/editor", NAME, size=4 * MB)
    hub_file.faults.throttle_bps = 4 * MB  # a second or so: long enough to see it go
    base = tmp_path_factory.mktemp(f"comfyui-editor-{request.param}")
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps(SETTINGS))
    with running_hub(hub) as hub_url, running_comfyui(
            base, {"HF_ENDPOINT": hub_url, "DASHBOARD_OFFICIAL_TEMPLATES": "false"}, frontend=request.param) as url:
        yield url, base, hub_url, request.param


def needing(hub_url: str) -> dict:
    """A workflow as the editor saves it: a checkpoint loader whose model, declared with its URL, is not installed."""
    return {"last_node_id": 1, "last_link_id": 0, "links": [], "groups": [], "config": {}, "extra": {},
            "version": 0.4, "nodes": [{
                "id": 1, "type": "CheckpointLoaderSimple", "pos": [80, 80], "size": [315, 98], "flags": {},
                "order": 0, "mode": 0, "inputs": [],
                "outputs": [{"name": "MODEL", "type": "MODEL", "links": None, "slot_index": 0},
                            {"name": "CLIP", "type": "CLIP", "links": None, "slot_index": 1},
                            {"name": "VAE", "type": "VAE", "links": None, "slot_index": 2}],
                "properties": {"Node name for S&R": "CheckpointLoaderSimple", "models": [{
                    "name": NAME, "url": f"{hub_url}/org/editor/resolve/main/{NAME}", "directory": "checkpoints"}]},
                "widgets_values": [NAME]}]}


LOADER_OFFERS = """(name) => {
    const nodes = window.app.graph._nodes || window.app.graph.nodes;
    const loader = nodes.find((n) => n.type === "CheckpointLoaderSimple");
    const values = loader && loader.widgets && loader.widgets[0].options.values;
    return Array.isArray(values) && values.includes(name);
}"""


def test_the_tab_installs_what_the_opened_workflow_needs_and_the_loader_offers_it(editor, browser):
    from playwright.sync_api import expect

    url, base, hub_url, frontend = editor
    with browser(width=1400, height=900) as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        page.wait_for_function("window.app && window.app.extensionManager && window.app.graph")
        assert not page.evaluate(LOADER_OFFERS, NAME)
        page.evaluate("(w) => window.app.loadGraphData(w, true, true, 'needs-a-model')", needing(hub_url))
        # the tab is closed: a toast says the workflow misses a file
        expect(page.get_by_text("This workflow is missing 1 model file").first).to_be_visible(timeout=30_000)
        page.locator(f'button[aria-label^="{TOOLTIP}"]').click()
        needs = page.locator(".cdash").get_by_role("region", name="This workflow")
        expect(needs).to_contain_text("1 of 1 model files missing.", timeout=30_000)
        install = needs.get_by_role("button", name="Install 1 missing file (4.2 MB)")
        if frontend == "pinned":
            screenshot(page, "comfyui-editor-needs", clip={"x": 0, "y": 0, "width": 900, "height": 520})
        install.click()
        expect(needs).to_contain_text("✓ All 1 model file it loads is installed.", timeout=60_000)
        assert (base / "models" / "checkpoints" / NAME).stat().st_size == 4 * MB
        page.wait_for_function(LOADER_OFFERS, arg=NAME, timeout=30_000)  # no reload
        assert not [e for e in errors if "dashboard" in e.lower()], errors
