"""The dashboard page in a real browser (chromium, headless) against the standalone server and the local hub.

Synchronisation is Playwright's auto-waiting `expect(...)` only. Screenshots: test-output/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import contextmanager

import pytest
import yaml
from browser import dashboard_process, requires_browser, screenshot, watch_errors
from comfyui_standin import ServedComfyUI
from downloads_support import write_preset
from live_server import live_server, loop_in_thread
from processes import free_port
from support import PASSWORD, fetch_json, put_model

pytestmark = requires_browser

MB = 1024 * 1024
RECENT_KEY = "comfyui-dashboard.recent-prompts"  # where the page keeps the prompts it saw
ONE_PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


@pytest.fixture
def serve(settings, hub):
    """Run the standalone dashboard (downloading from the fake hub); yields its URL."""

    @contextmanager
    def start(**changes):
        with live_server(settings.replace(hf_endpoint=hub.url, **changes)) as url:
            yield url

    return start


def add_preset(settings, hub, preset_id, name, size=MB, folder="loras", description="", **file_options):
    """A user preset of one file on the hub (a gated file makes the preset say so too)."""
    hub_file = hub.add_file(f"org/{preset_id.lower()}", f"{name}.safetensors", size=size, **file_options)
    write_preset(settings, preset_id, [{"path": f"{folder}/{name}.safetensors", "repo": f"org/{preset_id.lower()}",
                                        "file": f"{name}.safetensors", "size": size}])
    path = settings.data_dir / "presets" / f"{preset_id}.yaml"
    extra = {"gated": True} if file_options.get("gated") else {}
    if description:
        extra["description"] = description
    path.write_text(path.read_text() + yaml.safe_dump(extra) if extra else path.read_text())
    return hub_file


@contextmanager
def standin_comfyui(**options):
    """A stand-in ComfyUI on loopback, served from a thread; yields it and `run(fn)`, which calls `fn` on its loop."""
    async def call(fn):
        return fn()

    with loop_in_thread("comfyui-standin") as loop:
        served = asyncio.run_coroutine_threadsafe(ServedComfyUI(**options).start(), loop).result(30)
        try:
            yield served, lambda fn: asyncio.run_coroutine_threadsafe(call(fn), loop).result(30)
        finally:
            asyncio.run_coroutine_threadsafe(served.stop(), loop).result(30)


def nav(page, name):
    """A link of the page's navigation (toasts may hold links with similar names)."""
    return page.get_by_role("navigation", name="Views").get_by_role("link", name=name, exact=True)


def unlabelled_controls(page) -> list[str]:
    """Buttons without an accessible name, form fields without a label."""
    return page.evaluate("""() => [...document.querySelectorAll(
            'button, input, select, [role=meter], [role=progressbar]')]
        .filter(el => !(el.getAttribute('aria-label') || (el.labels && el.labels.length) ||
                        (el.tagName === 'BUTTON' && el.textContent.trim())))
        .map(el => el.outerHTML.slice(0, 120))""")


def test_overview_is_live_and_keyboard_navigable(serve, settings, hub, browser):
    from playwright.sync_api import expect

    add_preset(settings, hub, "TINY", "tiny", size=2 * MB)
    put_model(settings.models_dir, "checkpoints/base.safetensors", 3 * MB)
    with serve() as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        expect(page.locator("#live-status")).to_have_text("Live")
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        expect(page.get_by_role("meter", name="CPU")).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        expect(page.get_by_role("meter", name="RAM")).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        expect(page.get_by_role("meter", name="Disk")).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        expect(page.locator(".panel-gpus")).to_contain_text("No GPU detected.")
        expect(page.locator(".panel-storage")).to_contain_text("1 model")
        expect(page.locator(".panel-storage")).to_contain_text("Checkpoints")
        expect(page.locator(".panel-queue")).to_contain_text("ComfyUI is not available")
        # live, not polled: a download started elsewhere shows up, then the storage follows
        fetch_json(url + "/api/presets/TINY/install", "POST", {})
        expect(page.locator(".panel-storage")).to_contain_text("2 models")
        expect(page.locator(".panel-downloads")).to_contain_text("No downloads running.")
        screenshot(page, "overview")
        assert unlabelled_controls(page) == []
        # keyboard: the skip link first, then the views by their links
        page.keyboard.press("Tab")
        expect(page.locator("#skip")).to_be_focused()
        nav(page, "Presets").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Presets", level=1)).to_be_visible()
        expect(nav(page, "Presets")).to_have_attribute("aria-current", "page")
        expect(page.locator("#main")).to_be_focused()
        assert errors == []


def test_gpu_gauges(serve, monkeypatch, browser):
    from playwright.sync_api import expect

    class OneGpu:
        def __init__(self, *args):
            pass

        def read(self):
            return [{"index": 0, "name": "Test GPU", "uuid": "GPU-0", "pci_bus_id": "00000000:01:00.0",
                     "utilization_percent": 42, "memory_used_gb": 31.5, "memory_total_gb": 79.19,
                     "memory_percent": 39.8, "temperature_c": 61, "power_w": 250.0, "power_limit_w": 700.0,
                     "visible_to_comfyui": True}]

        def close(self):
            pass

    monkeypatch.setattr("dashboard.services.container.GpuReader", OneGpu)
    with serve() as url, browser() as context:
        page = context.new_page()
        page.goto(url + "/")
        gpus = page.locator(".panel-gpus")
        expect(gpus).to_contain_text("Test GPU")
        expect(page.get_by_role("meter", name="GPU 0 utilization")).to_have_attribute("aria-valuenow", "42")
        expect(page.get_by_role("meter", name="GPU 0 VRAM")).to_have_attribute("aria-valuetext", "33.8 GB of 85.0 GB")
        expect(gpus).to_contain_text("61 °C")
        expect(gpus).not_to_contain_text("No GPU")
        expect(page.locator(".panel-storage")).to_contain_text("0 models")
        screenshot(page, "overview-gpu")


def test_presets_filter_install_with_progress_uninstall_and_gated(serve, settings, hub, browser):
    from playwright.sync_api import expect

    slow = add_preset(settings, hub, "ALPHA", "alpha", size=8 * MB,
                      description="A LoRA served slowly by the local test hub, to watch the progress.")
    slow.faults.throttle_bps = 2 * MB
    add_preset(settings, hub, "BETA", "beta", description="A one-file preset from the local test hub.")
    add_preset(settings, hub, "GATED", "gated", gated=True, description="A model whose repository is gated.")
    with serve() as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/presets")
        cards = page.locator("article.card")
        page.get_by_label("Source").select_option("user")
        expect(cards).to_have_count(3)
        page.get_by_label("Search presets").fill("beta")
        expect(cards).to_have_count(1)
        expect(cards.first).to_contain_text("Beta")
        page.get_by_label("Search presets").fill("")
        page.get_by_role("button", name="Audio").click()
        expect(page.get_by_text("No preset matches these filters.")).to_be_visible()
        page.get_by_role("button", name="All", exact=True).click()
        expect(cards).to_have_count(3)
        assert unlabelled_controls(page) == []

        alpha = page.locator('article[data-preset="ALPHA"]')
        alpha.get_by_role("button", name="Install Alpha").click()
        expect(alpha.get_by_role("progressbar")).to_be_visible()
        expect(alpha.locator(".progress-line")).to_contain_text(re.compile(r"\d+ (MB|KB)/s"))
        expect(alpha.locator(".progress-line")).to_contain_text(re.compile(r"\d+s left"))
        screenshot(page, "presets-installing")
        expect(alpha).to_contain_text("✓ Installed", timeout=60_000)
        assert (settings.models_dir / "loras" / "alpha.safetensors").stat().st_size == 8 * MB
        expect(page.get_by_role("status").filter(has_text="Alpha is installed.")).to_be_visible()

        alpha.get_by_role("button", name="Uninstall Alpha").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Uninstall Alpha?")
        dialog.get_by_role("button", name="Uninstall").click()
        expect(page.get_by_role("status").filter(has_text="Alpha uninstalled: 1 file(s) removed")).to_be_visible()
        expect(alpha.get_by_role("button", name="Install Alpha")).to_be_visible()
        assert not (settings.models_dir / "loras" / "alpha.safetensors").exists()

        gated = page.locator('article[data-preset="GATED"]')
        expect(gated).to_contain_text("Gated model.")
        gated.get_by_role("button", name="Install Gated").click()
        failure = gated.locator(".notice-error")
        expect(failure).to_contain_text("is gated: accept its licence on the model page and set HF_TOKEN")
        assert failure.inner_text().count("HF_TOKEN") == 1, failure.inner_text()  # the hint once, not twice
        expect(gated.get_by_role("link", name="model page")).to_have_attribute("href", f"{hub.url}/org/gated")
        assert errors == []



def test_uninstalling_a_preset_a_queued_prompt_uses_asks_again(serve, settings, hub, browser):
    from playwright.sync_api import expect

    add_preset(settings, hub, "ALPHA", "alpha")
    model = put_model(settings.models_dir, "loras/alpha.safetensors", MB)
    prompt = {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "alpha.safetensors"}}}
    with standin_comfyui() as (comfyui, run), serve(comfyui_url=comfyui.url) as url, browser() as context:
        run(lambda: comfyui.server.prompt_queue.put((1, "pending-prompt", prompt, {}, ["1"])))
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/presets")
        alpha = page.locator('article[data-preset="ALPHA"]')
        dialog = page.get_by_role("dialog")
        for choice in ("Cancel", "Uninstall anyway"):
            alpha.get_by_role("button", name="Uninstall Alpha").click()
            dialog.get_by_role("button", name="Uninstall").click()
            expect(dialog).to_contain_text("Alpha is in use")
            expect(dialog).to_contain_text("loras/alpha.safetensors")
            dialog.get_by_role("button", name=choice).click()
            expect(dialog).to_have_count(0)
            if choice == "Cancel":
                assert model.exists()
                expect(alpha).to_contain_text("✓ Installed")
        expect(page.get_by_role("status").filter(has_text="Alpha uninstalled: 1 file(s) removed")).to_be_visible()
        assert not model.exists()
        assert errors == []


def test_queue_shows_output_images_of_a_remote_comfyui(serve, tmp_path, browser):
    from playwright.sync_api import expect

    output = tmp_path / "comfyui-output"
    output.mkdir()
    (output / "thumb_00001_.png").write_bytes(ONE_PIXEL_PNG)
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 1, "color": 0}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "thumb"}}}
    with standin_comfyui(directories={"output": output}) as (comfyui, run), \
            serve(comfyui_url=comfyui.url) as url, browser() as context:
        prompt_id = fetch_json(url + "/api/comfyui/execute", "POST", {"workflow": workflow})["prompt_id"]
        run(comfyui.worker.run_next)
        page = context.new_page()
        errors = watch_errors(page)
        page.add_init_script(f"localStorage.setItem({json.dumps(RECENT_KEY)}, {json.dumps(json.dumps([prompt_id]))})")
        page.goto(url + "/#/queue")
        image = page.get_by_role("img", name="Output thumb_00001_.png")
        expect(image).to_have_attribute("src", re.compile(r"^api/comfyui/view\?filename=thumb_00001_\.png"))
        expect(image).to_have_js_property("naturalWidth", 1)  # the bytes came through and decoded
        assert errors == []

def test_downloads_pause_resume_priority_and_cancel(serve, settings, hub, browser):
    from playwright.sync_api import expect

    slow = add_preset(settings, hub, "SLOW", "slow", size=16 * MB)
    slow.faults.throttle_bps = 2 * MB
    other = add_preset(settings, hub, "OTHER", "other", size=16 * MB)
    other.faults.throttle_bps = 1 * MB
    with serve() as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/downloads")
        expect(page.locator("#live-status")).to_have_text("Live")
        download_id = fetch_json(url + "/api/presets/SLOW/install", "POST", {})["download_id"]
        row = page.locator(f'li[data-download="{download_id}"]')
        expect(row).to_have_attribute("data-status", "downloading")
        expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", re.compile(r"^([1-9]|0\.[1-9])"))
        expect(row).to_contain_text(re.compile(r"[1-9]\d* (MB|KB)/s"))
        row.get_by_label("Priority").select_option("high")
        expect(row.get_by_label("Priority")).to_have_value("high")
        row.get_by_role("button", name="Pause download of Slow").click()
        expect(row).to_have_attribute("data-status", "paused")
        expect(row.locator(".badge")).to_have_text("Paused")
        assert fetch_json(f"{url}/api/downloads/{download_id}")["priority"] == "high"
        part = settings.models_dir / "loras" / "slow.safetensors.part"
        assert part.exists()
        screenshot(page, "downloads-paused")
        slow.faults.throttle_bps = None
        row.get_by_role("button", name="Resume download of Slow").click()
        expect(row).to_have_attribute("data-status", "completed", timeout=60_000)
        expect(page.get_by_role("list", name="Finished downloads").locator(row)).to_be_visible()
        assert not part.exists() and (settings.models_dir / "loras" / "slow.safetensors").exists()
        assert any(r.headers.get("Range", "").startswith("bytes=") for r in hub.requests
                   if r.method == "GET" and r.path.endswith("slow.safetensors"))

        other_id = fetch_json(url + "/api/presets/OTHER/install", "POST", {})["download_id"]
        other_row = page.locator(f'li[data-download="{other_id}"]')
        expect(other_row).to_have_attribute("data-status", "downloading")
        other_row.get_by_role("button", name="Cancel download of Other").click()
        expect(other_row).to_have_attribute("data-status", "cancelled")
        assert not (settings.models_dir / "loras" / "other.safetensors.part").exists()
        assert errors == []


def test_models_multi_select_delete_shows_the_space_freed(serve, settings, browser):
    from playwright.sync_api import expect

    put_model(settings.models_dir, "loras/one.safetensors", 3 * MB)
    put_model(settings.models_dir, "checkpoints/two.safetensors", 1 * MB)
    keep = put_model(settings.models_dir, "vae/keep.safetensors", 2 * MB)
    with serve() as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/models")
        rows = page.locator("tbody tr[data-path]")
        expect(rows).to_have_count(3)
        page.get_by_label("Type").select_option("loras")
        expect(rows).to_have_count(1)
        page.get_by_label("Type").select_option("")
        page.get_by_label("Select loras/one.safetensors").check()
        page.get_by_label("Select checkpoints/two.safetensors").check()
        expect(page.locator(".selection-text")).to_have_text("2 selected · 4.2 MB")
        assert unlabelled_controls(page) == []
        screenshot(page, "models")
        page.get_by_role("button", name="Delete selected").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("Delete 2 model files?")
        expect(dialog).to_contain_text("This frees 4.2 MB")
        screenshot(page, "models-confirm")
        dialog.get_by_role("button", name="Delete").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-path", "vae/keep.safetensors")
        expect(page.get_by_role("status").filter(has_text="Deleted 2 files, freed 4.2 MB.")).to_be_visible()
        assert not (settings.models_dir / "loras" / "one.safetensors").exists() and keep.exists()
        assert errors == []


def test_queue_and_workflows_without_comfyui(serve, settings, hub, browser):
    from playwright.sync_api import expect

    add_preset(settings, hub, "TINY", "tiny")
    with serve() as url, browser() as context:
        loader = {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "tiny.safetensors", "strength_model": 1}}
        fetch_json(url + "/api/workflows", "POST", {"name": "Needs tiny", "workflow": {"1": loader}})
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/queue")
        expect(page.locator("#main")).to_contain_text("ComfyUI is not available.")
        expect(page.get_by_role("button", name="Interrupt the running prompt")).to_be_disabled()
        screenshot(page, "queue-unavailable")

        nav(page, "Workflows").click()
        page.get_by_label("Search workflows").fill("empty image")
        page.locator('button[data-workflow="empty_image"]').click()
        detail = page.get_by_role("region", name="Selected workflow")
        detail.get_by_text("Workflow JSON").click()
        expect(detail.locator("pre")).to_contain_text('"class_type": "EmptyImage"')
        detail.get_by_role("button", name=re.compile("^Run ")).click()
        expect(detail.locator(".run-result")).to_contain_text("ComfyUI is not available")

        page.get_by_label("Search workflows").fill("needs tiny")
        page.locator('button[data-workflow="needs_tiny"]').click()
        detail.get_by_role("button", name=re.compile("^Check the models")).click()
        expect(detail).to_contain_text("✗ missing")
        screenshot(page, "workflows")
        detail.get_by_role("button", name=re.compile("^Install what this workflow needs")).click()
        nav(page, "Downloads").click()
        expect(page.locator("li.download-row")).to_have_attribute("data-status", "completed")
        assert (settings.models_dir / "loras" / "tiny.safetensors").exists()
        assert errors == []


def test_login_when_auth_is_on(serve, settings, hub, browser):
    from playwright.sync_api import expect

    add_preset(settings, hub, "BETA", "beta")
    with serve(enable_auth=True, admin_password=PASSWORD) as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        expect(page.get_by_role("navigation", name="Views")).to_be_hidden()
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
        screenshot(page, "login")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        expect(page.locator("#live-status")).to_have_text("Live")  # the socket authenticated by the cookie
        expect(page.get_by_role("meter", name="CPU")).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        expect(page.locator("#user-name")).to_have_text("admin (administrator)")
        assert page.evaluate("document.cookie") == ""  # HttpOnly
        # a state change through the cookie session (same origin, JSON)
        nav(page, "Presets").click()
        page.get_by_role("button", name="Install Beta").click()
        expect(page.locator('article[data-preset="BETA"]')).to_contain_text("✓ Installed")
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        page.reload()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        assert errors == []


def test_page_reconnects_after_a_server_restart(tmp_path, browser):
    from playwright.sync_api import expect

    port = free_port()
    workspace = tmp_path / "workspace"
    env = {"DASHBOARD_STATUS_INTERVAL": "0.2"}
    with browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        live = page.locator("#live-status")
        with dashboard_process(port, workspace, env) as first:
            page.goto(f"http://127.0.0.1:{port}/")
            expect(live).to_have_text("Live")
            expect(page.locator(".panel-storage")).to_contain_text("0 models")
            first.terminate()
            first.wait(20)
            expect(live).to_have_text("Reconnecting…")
        model = workspace / "models" / "loras" / "added-while-down.safetensors"
        model.write_bytes(b"\0" * MB)
        with dashboard_process(port, workspace, env):
            expect(live).to_have_text("Live", timeout=40_000)
            expect(page.locator(".panel-storage")).to_contain_text("1 model")  # read again after reconnecting
            expect(page.get_by_role("meter", name="CPU")).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        assert errors == []


@pytest.mark.parametrize("view", ["overview", "presets", "downloads", "models", "queue", "workflows"])
def test_usable_at_360_px(serve, settings, hub, view, browser):
    from playwright.sync_api import expect

    add_preset(settings, hub, "TINY", "tiny")
    put_model(settings.models_dir, "loras/a-model-with-a-rather-long-file-name-for-a-phone.safetensors", MB)
    with serve() as url, browser(width=360, height=740) as context:
        page = context.new_page()
        page.goto(f"{url}/#/{view}")
        expect(page.locator("#live-status")).to_have_text("Live")
        expect(page.get_by_role("heading", level=1)).to_have_text(view.title())
        expect(page.locator("#main .muted").filter(has_text=re.compile("^(Loading|Reading)"))).to_have_count(0)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{view} is {width}px wide at a 360px viewport"
        screenshot(page, f"narrow-{view}", full_page=True)
