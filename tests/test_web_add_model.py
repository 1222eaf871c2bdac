"""The Models view's "Add a model" form in a real browser: Check (the dry run) shows the file, its size, its
source and licence and queues nothing; Download starts it and it completes; a bad URL shows the server's error,
field named.

Synchronisation is Playwright's auto-waiting `expect(...)` only. Screenshots: test-output/screenshots/.
"""

from __future__ import annotations

import re

from browser import requires_browser, screenshot, watch_errors
from downloads_support import sha256_of
from live_server import live_server
from support import fetch_json

pytestmark = requires_browser

MB = 1024 * 1024


def test_add_a_model_from_a_hub_url_check_then_download(settings, hub, browser):
    from playwright.sync_api import expect

    hub_file = hub.add_file("org/tiny", "weights/tiny.safetensors", size=3 * MB)
    hub.licenses["org/tiny"] = "openrail++"
    url_of_file = f"{hub.url}/org/tiny/resolve/main/weights/tiny.safetensors"
    with live_server(settings.replace(hf_endpoint=hub.url)) as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/models")
        expect(page.locator("#live-status")).to_have_text("Live")
        form = page.get_by_role("form", name="Add a model")
        form.get_by_label("Model URL").fill(url_of_file)
        form.get_by_label("Folder", exact=True).select_option("loras")
        form.get_by_label("Subfolder (optional)").fill("hub")
        download = form.get_by_role("button", name="Download")
        expect(download).to_be_disabled()
        form.get_by_label("Model URL").press("Enter")  # the keyboard submits the form: Check
        facts = form.locator(".add-model-facts")
        expect(facts.locator('[data-fact="name"]')).to_have_text("tiny.safetensors")
        expect(facts.locator('[data-fact="path"]')).to_have_text("loras/hub/tiny.safetensors")
        expect(facts.locator('[data-fact="size"]')).to_have_text("3.1 MB")
        expect(facts.locator('[data-fact="source"]')).to_contain_text("Hugging Face: org/tiny")
        licence = facts.locator('[data-fact="license"]').get_by_role("link", name="openrail++")
        expect(licence).to_have_attribute("href", f"{hub.url}/org/tiny")
        assert fetch_json(url + "/api/downloads")["total"] == 0  # a check queues nothing
        assert not (settings.models_dir / "loras" / "hub").exists()
        screenshot(page, "models-add")

        download.focus()
        page.keyboard.press("Enter")
        started = form.locator(".add-model-started")
        expect(started).to_contain_text("Download of loras/hub/tiny.safetensors started")
        download_id = started.get_attribute("data-download")
        started.get_by_role("link", name="See it on the Downloads view").click()
        row = page.locator(f'li[data-download="{download_id}"]')
        expect(row).to_have_attribute("data-status", "completed", timeout=60_000)
        assert sha256_of(settings.models_dir / "loras" / "hub" / "tiny.safetensors") == hub_file.sha256
        assert errors == []


def test_a_bad_url_shows_the_servers_error_naming_the_field(settings, hub, browser):
    from playwright.sync_api import expect

    with live_server(settings.replace(hf_endpoint=hub.url)) as url, browser(width=360, height=740) as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/models")
        expect(page.locator("#live-status")).to_have_text("Live")
        form = page.get_by_role("form", name="Add a model")
        expect(form.get_by_label("Folder", exact=True)).to_contain_text("LoRAs (loras)")
        form.get_by_label("Model URL").fill("https://example.com/model.safetensors")
        form.get_by_label("Folder", exact=True).select_option("loras")
        form.get_by_role("button", name="Check").click()
        alert = form.get_by_role("alert")
        expect(alert).to_contain_text("example.com is not a host downloads may come from")
        expect(alert).to_contain_text("(field: URL)")
        expect(form.get_by_label("Model URL")).to_have_attribute("aria-invalid", "true")
        expect(form.get_by_label("Model URL")).to_be_focused()
        expect(form.get_by_role("button", name="Download")).to_be_disabled()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the models view is {width}px wide at a 360px viewport"
        form.get_by_label("Model URL").fill("")
        form.get_by_role("button", name="Check").click()
        expect(alert).to_contain_text(re.compile("url", re.IGNORECASE))
        assert fetch_json(url + "/api/downloads")["total"] == 0
        assert errors == []
