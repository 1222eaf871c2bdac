"""The Queue view's control of ComfyUI's queue, and the sidebar's pause, in a real browser on the stand-in.

The stand-in ComfyUI runs in this process with the dashboard loaded as its custom node (served on a
loopback port); prompts are queued through ComfyUI's own `POST /prompt`, as its editor does, and what
the page shows is held against the stand-in's `prompt_queue`. Synchronisation is Playwright's
auto-waiting `expect(...)`. Screenshots: test-output/screenshots/.
"""

from __future__ import annotations

import json

import pytest
from browser import requires_browser, screenshot, watch_errors
from comfyui_standin import PromptServer, clean_env, served_custom_node
from support import fetch_json

pytestmark = requires_browser

TOOLTIP = "ComfyUI Dashboard"
WORKFLOW = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "queued"}}}


@pytest.fixture
def comfyui(monkeypatch, tmp_path, hub):
    """Start the stand-in with the dashboard as its custom node; yields its URL (the dashboard is at /dashboard/)."""
    clean_env(monkeypatch)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("DASHBOARD_OFFICIAL_TEMPLATES", "false")
    return lambda: served_custom_node(monkeypatch, tmp_path)


def queue_prompt(url: str, prompt_id: str) -> None:
    """Queue a prompt as ComfyUI's editor does: its own POST /prompt."""
    assert fetch_json(url + "/prompt", "POST", {"prompt": WORKFLOW, "prompt_id": prompt_id})["prompt_id"] == prompt_id


def comfyui_pending() -> list[str]:
    """The ids of ComfyUI's pending prompts, in the order it runs them (lowest number first)."""
    _running, pending = PromptServer.instance.prompt_queue.get_current_queue_volatile()
    return [item[1] for item in sorted(pending, key=lambda item: item[0])]


def test_move_hold_release_pause_resume_and_free_memory(comfyui, browser):
    from playwright.sync_api import expect

    with comfyui() as url, browser() as context:
        queue_prompt(url, "prompt-a")
        queue_prompt(url, "prompt-b")
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/dashboard/#/queue")
        rows = page.get_by_role("list", name="Pending prompts").get_by_role("listitem")
        held = page.get_by_role("region", name="Held")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("prompt-a")

        up = page.get_by_role("button", name="Move prompt prompt-b up")
        up.click()
        expect(rows.nth(0)).to_contain_text("prompt-b")
        expect(rows.nth(1)).to_contain_text("prompt-a")
        expect(up).to_be_focused()  # the focus stays on the button after the list is drawn again
        expect(up).to_have_attribute("aria-disabled", "true")  # it is first now
        assert comfyui_pending() == ["prompt-b", "prompt-a"]

        page.get_by_role("button", name="Hold prompt prompt-a").click()
        expect(rows).to_have_count(1)
        expect(held.get_by_role("listitem")).to_have_count(1)
        expect(held.get_by_role("listitem")).to_contain_text("prompt-a")
        expect(held.get_by_role("listitem")).to_contain_text("held")
        assert comfyui_pending() == ["prompt-b"]  # out of ComfyUI's queue, so its own UI no longer lists it
        screenshot(page, "queue-control")

        held.get_by_role("button", name="Release prompt prompt-a").press("Enter")  # the keyboard does it too
        expect(rows).to_have_count(2)
        expect(held).to_contain_text("No held prompts.")
        expect(held).to_be_focused()  # its button went with it: the focus stays in the Held section
        assert comfyui_pending() == ["prompt-b", "prompt-a"]

        page.get_by_role("button", name="Pause the queue").click()
        expect(page.get_by_text("Paused: new prompts wait here")).to_be_visible()
        expect(page.get_by_role("region", name="Pending")).to_contain_text("No pending prompts.")
        expect(held.get_by_role("listitem")).to_have_count(2)
        expect(held.get_by_role("listitem").first).to_contain_text("waiting for resume")
        assert comfyui_pending() == []
        queue_prompt(url, "prompt-c")  # queued from the editor while paused: it waits here too
        expect(held.get_by_role("listitem")).to_have_count(3)
        assert comfyui_pending() == []

        page.get_by_role("button", name="Resume the queue").click()
        expect(rows).to_have_count(3)
        expect(page.get_by_text("Paused: new prompts wait here")).to_have_count(0)
        expect(held).to_contain_text("No held prompts.")
        assert comfyui_pending() == ["prompt-b", "prompt-a", "prompt-c"]

        page.get_by_role("button", name="Free memory").click()
        expect(page.get_by_role("status").filter(has_text="Asked ComfyUI to unload its models and free its memory.")
               ).to_be_visible()
        assert PromptServer.instance.prompt_queue.flags == {"unload_models": True, "free_memory": True}
        assert errors == []


def test_drag_a_prompt_onto_another_to_put_it_there(comfyui, browser):
    from playwright.sync_api import expect

    with comfyui() as url, browser() as context:
        for prompt_id in ("prompt-a", "prompt-b", "prompt-c"):
            queue_prompt(url, prompt_id)
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/dashboard/#/queue")
        rows = page.get_by_role("list", name="Pending prompts").get_by_role("listitem")
        expect(rows).to_have_count(3)
        rows.nth(2).locator(".drag-handle").drag_to(rows.nth(0))
        expect(rows.nth(0)).to_contain_text("prompt-c")
        expect(rows.nth(1)).to_contain_text("prompt-a")
        expect(rows.nth(2)).to_contain_text("prompt-b")
        assert comfyui_pending() == ["prompt-c", "prompt-a", "prompt-b"]
        assert errors == []


def test_the_sidebar_pauses_and_says_so(comfyui, browser):
    from playwright.sync_api import expect

    with comfyui() as url, browser() as context:
        queue_prompt(url, "prompt-a")
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        page.locator(f'button[aria-label="{TOOLTIP}"]').click()
        queue = page.locator(".cdash").get_by_role("region", name="Queue")
        expect(queue).to_contain_text("0 running · 1 pending")
        queue.get_by_role("button", name="Pause the queue").click()
        expect(queue).to_contain_text("0 running · 0 pending · paused · 1 held")
        assert comfyui_pending() == []
        resume = queue.get_by_role("button", name="Resume the queue")
        expect(resume).to_be_focused()
        resume.click()
        expect(queue).to_contain_text("0 running · 1 pending")
        expect(queue).not_to_contain_text("paused")
        assert comfyui_pending() == ["prompt-a"]
        assert errors == []


def test_export_the_queue_to_a_file_and_import_it_back(comfyui, browser, tmp_path):
    from playwright.sync_api import expect

    with comfyui() as url, browser() as context:
        queue_prompt(url, "prompt-a")
        queue_prompt(url, "prompt-b")
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/dashboard/#/queue")
        page.get_by_role("button", name="Hold prompt prompt-b").click()
        held = page.get_by_role("region", name="Held")
        expect(held.get_by_role("listitem")).to_have_count(1)
        with page.expect_download() as download:
            page.get_by_role("button", name="Export the queue as JSON").click()
        exported = tmp_path / download.value.suggested_filename
        download.value.save_as(exported)
        assert exported.suffix == ".json"
        document = json.loads(exported.read_text())
        assert document["format"] == "comfyui-dashboard-queue"
        assert [p["prompt_id"] for p in document["pending"]] == ["prompt-a"]
        assert [p["prompt_id"] for p in document["held"]] == ["prompt-b"]

        page.get_by_role("button", name="Clear all pending prompts").click()
        page.get_by_role("dialog").get_by_role("button", name="Clear").click()
        expect(page.get_by_role("region", name="Pending")).to_contain_text("No pending prompts.")
        assert comfyui_pending() == []
        page.get_by_label("Queue export to import").set_input_files(exported)
        expect(page.get_by_role("status").filter(has_text="1 queued, 0 held, 1 skipped")).to_be_visible()
        expect(page.get_by_role("list", name="Pending prompts").get_by_role("listitem")).to_have_count(1)
        assert comfyui_pending() == ["prompt-a"]
        expect(held.get_by_role("listitem")).to_have_count(1)  # prompt-b was still held: skipped, not doubled
        assert errors == []
