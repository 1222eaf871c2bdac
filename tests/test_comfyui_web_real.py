"""Integration tier, in a real browser: the sidebar tab in ComfyUI's own frontend, and the page at /dashboard/.

Skipped unless COMFYUI_DIR and COMFYUI_PYTHON are set and chromium + playwright are present. ComfyUI
downloads from the local fake hub (HF_ENDPOINT) a user preset in <base>/user/dashboard/presets/.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from browser import requires_browser, screenshot, watch_errors
from hub import FakeHub, running_hub
from real_comfyui import requires_comfyui, running_comfyui, write_gate_node
from support import fetch_json

pytestmark = [requires_comfyui, requires_browser, pytest.mark.comfyui]

MB = 1024 * 1024
TOOLTIP = "ComfyUI Dashboard"


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    hub = FakeHub()
    hub_file = hub.add_file("org/sidebar", "sidebar_tiny.safetensors", size=6 * MB)
    hub_file.faults.throttle_bps = 2 * MB  # slow enough to see it in the tab
    base = tmp_path_factory.mktemp("comfyui-web")
    presets = base / "user" / "dashboard" / "presets"
    presets.mkdir(parents=True)
    (presets / "SIDEBAR_TINY.yaml").write_text(yaml.safe_dump({
        "id": "SIDEBAR_TINY", "name": "Sidebar Tiny", "category": "Image Generation", "type": "image",
        "files": [{"path": "loras/sidebar_tiny.safetensors", "size": 6 * MB,
                   "source": {"repo": "org/sidebar", "file": "sidebar_tiny.safetensors"}}]}))
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    write_gate_node(base)
    with running_hub(hub) as hub_url, running_comfyui(base, {"HF_ENDPOINT": hub_url,
                                                            "DASHBOARD_OFFICIAL_TEMPLATES": "false"}) as url:
        yield url, base


def test_sidebar_tab_is_live_and_installs_a_preset(comfyui, browser):
    from playwright.sync_api import expect

    url, base = comfyui
    with browser(width=1400, height=900) as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        page.wait_for_function("window.app && window.app.extensionManager")
        page.locator(f'button[aria-label^="{TOOLTIP}"]').click()
        tab = page.locator(".cdash")
        expect(tab).to_be_visible()
        expect(tab.get_by_role("status")).to_have_text("live")
        expect(tab.get_by_role("meter", name="CPU")).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        full_page = tab.get_by_role("link", name=re.compile("Open the full dashboard"))
        expect(full_page).to_have_attribute("href", "/dashboard/")
        expect(tab.get_by_role("region", name="Queue")).to_contain_text("0 running")
        tab.get_by_label("Find a preset to install").fill("sidebar tiny")
        expect(tab.get_by_role("region", name="Install a preset")).to_contain_text("Sidebar Tiny · 6.3 MB")
        tab.get_by_role("button", name="Install Sidebar Tiny").click()
        expect(tab.get_by_role("progressbar", name="Progress of Sidebar Tiny")).to_be_visible()
        expect(tab.get_by_role("button", name="Pause download of Sidebar Tiny")).to_be_visible()
        expect(tab.get_by_role("progressbar", name="Progress of Sidebar Tiny")).to_have_attribute(
            "aria-valuenow", re.compile(r"^[1-9]\d*$"))
        screenshot(page, "comfyui-sidebar", clip={"x": 0, "y": 0, "width": 760, "height": 560})
        expect(page.get_by_text("Sidebar Tiny installed", exact=True)).to_be_visible(timeout=60_000)  # ComfyUI's toast
        expect(tab.get_by_role("region", name="Downloads")).to_contain_text("No downloads running.")
        assert (base / "models" / "loras" / "sidebar_tiny.safetensors").stat().st_size == 6 * MB
        # closing and reopening the tab renders it afresh from the state kept outside the DOM
        page.locator(f'button[aria-label^="{TOOLTIP}"]').click()
        expect(tab).to_be_hidden()
        page.locator(f'button[aria-label^="{TOOLTIP}"]').click()
        tab = page.locator(".cdash")
        expect(tab.get_by_role("status")).to_have_text("live")
        expect(tab.get_by_label("Find a preset to install")).to_have_value("sidebar tiny")
        expect(tab.get_by_role("region", name="Install a preset")).to_contain_text("installed")  # its results too
        tab.get_by_label("Find a preset to install").fill("ltx-2 19b")  # ComfyUI 0.3.64 lacks its upscaler's folder
        expect(tab.locator('[data-preset="LTX_2_T2V"]')).to_contain_text("needs a newer ComfyUI")
        assert not [e for e in errors if "dashboard" in e.lower()], errors


def test_sidebar_says_why_the_dashboard_failed_to_start(tmp_path, browser):
    from playwright.sync_api import expect

    (tmp_path / "taken").write_text("not a folder")
    settings = tmp_path / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    with running_comfyui(tmp_path, {"DASHBOARD_DATA_DIR": str(tmp_path / "taken")}) as url, browser() as context:
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_function("window.app && window.app.extensionManager")
        page.locator(f'button[aria-label^="{TOOLTIP}"]').click()
        tab = page.locator(".cdash")
        expect(tab.get_by_role("alert")).to_contain_text(
            f"ComfyUI Dashboard failed to start: DASHBOARD_DATA_DIR: the data folder {tmp_path / 'taken'}")
        expect(tab.get_by_role("status")).to_have_text("failed")
        screenshot(page, "comfyui-sidebar-failed", clip={"x": 0, "y": 0, "width": 760, "height": 400})


def test_page_inside_comfyui_runs_a_workflow_and_shows_its_image(comfyui, browser):
    from playwright.sync_api import expect

    url, _base = comfyui
    with browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/dashboard/")
        expect(page.locator("#live-status")).to_have_text("Live")
        expect(page.locator(".panel-queue")).to_contain_text("Running")
        page.get_by_role("link", name="Workflows").click()
        page.get_by_label("Search workflows").fill("empty image")
        page.locator('button[data-workflow="empty_image"]').click()
        detail = page.get_by_role("region", name="Selected workflow")
        detail.get_by_role("button", name=re.compile("^Run ")).click()
        expect(detail.locator(".run-result")).to_contain_text("Queued as prompt")
        page.get_by_role("link", name="Watch it in the queue").click()
        image = page.locator(".history-item img").first
        expect(image).to_have_attribute("src", re.compile(r"^\.\./view\?filename="))
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        expect(page.locator(".history-item").first).to_contain_text("completed")
        screenshot(page, "comfyui-page-queue")
        assert errors == []


def execute(url: str, workflow: dict) -> dict:
    return fetch_json(url + "/dashboard/api/comfyui/execute", "POST", {"workflow": workflow})


def test_queue_view_follows_comfyui_and_controls_it(comfyui, tmp_path, browser):
    """Per-node progress of the running prompt, pending prompts, clear and interrupt, in the real queue."""
    from playwright.sync_api import expect

    url, _base = comfyui
    gate = {"1": {"class_type": "DashboardTestGate", "inputs": {"path": str(tmp_path / "never")}}}
    with browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/dashboard/#/queue")
        expect(page.locator("#live-status")).to_have_text("Live")
        first = execute(url, gate)["prompt_id"]
        second = execute(url, gate)["prompt_id"]
        running = page.get_by_role("region", name="Running")
        expect(running).to_contain_text(first)
        expect(running.get_by_role("list", name="Nodes")).to_contain_text("1 running")
        pending = page.get_by_role("region", name="Pending")
        expect(pending).to_contain_text(second)
        screenshot(page, "comfyui-page-running")
        page.get_by_role("button", name="Clear all pending prompts").click()
        page.get_by_role("dialog").get_by_role("button", name="Clear").click()
        expect(pending).to_contain_text("No pending prompts.")
        page.get_by_role("button", name="Interrupt the running prompt").click()
        expect(running).to_contain_text("Idle.")
        recent = page.get_by_role("region", name="Recent")
        expect(recent.locator(".history-item").filter(has_text=first)).to_contain_text("interrupted")
        assert errors == []
