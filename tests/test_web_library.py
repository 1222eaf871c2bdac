"""The Models view's library features in a real browser against the standalone server: the hash scan's progress
line and "Scan now", the duplicates view (groups, the copy to keep, a dry run that says what removing frees, then
one copy left on disk), a model's detail dialog (hash, header title and keys; keyboard in and out), and the
"unused for N days" and "updates available" views.

Synchronisation is Playwright's auto-waiting `expect(...)` only. Screenshots: test-output/screenshots/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time

import pytest
from browser import requires_browser, screenshot, watch_errors
from civitai import FakeCivitai, running_civitai
from downloads_support import sha256_of, write_preset
from live_server import live_server
from support import fetch_json, put_model

pytestmark = requires_browser

MB = 1024 * 1024
DAY = 86400
TITLE = "Detail Tweaker XL"
ARCHITECTURE = "stable-diffusion-xl-v1-base/lora"


def safetensors(size: int) -> bytes:
    """A safetensors file of one F32 tensor, `size` bytes of data, whose header names a title and an architecture."""
    header = json.dumps({
        "__metadata__": {"modelspec.title": TITLE, "modelspec.architecture": ARCHITECTURE},
        "lora_up.weight": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size]},
    }).encode()
    return struct.pack("<Q", len(header)) + header + bytes(size)


@pytest.fixture
def library(settings):
    """Two copies of one safetensors file in different folders, an old file, a fresh one (all of other sizes)."""
    data = safetensors(2 * MB)
    for path in ("loras/detail-tweaker.safetensors", "loras/backup/detail-tweaker.safetensors"):
        put_model(settings.models_dir, path).write_bytes(data)
    put_model(settings.models_dir, "vae/old.safetensors", 3 * MB, mtime=time.time() - 90 * DAY)
    put_model(settings.models_dir, "checkpoints/fresh.safetensors", MB)
    return hashlib.sha256(data).hexdigest()


def fact(dialog, name):
    """What the detail dialog says of `name` (its `data-fact`)."""
    return dialog.locator(f'[data-fact="{name}"] dd')


def open_models(page, url):
    from playwright.sync_api import expect

    page.goto(url + "/#/models")
    expect(page.locator("#live-status")).to_have_text("Live")
    expect(page.locator("tbody tr[data-path]")).to_have_count(4)


def test_scan_then_remove_duplicates_after_a_dry_run_and_the_detail_dialog(settings, library, browser):
    from playwright.sync_api import expect

    with live_server(settings) as url, browser(width=1440, height=900) as context:
        page = context.new_page()
        errors = watch_errors(page)
        open_models(page, url)
        scan_line = page.get_by_role("region", name="Library scan")
        expect(scan_line).to_contain_text("No model files hashed yet")

        # before a scan the detail says the file is not hashed yet
        page.get_by_role("button", name="Details of checkpoints/fresh.safetensors").click()
        dialog = page.get_by_role("dialog")
        expect(fact(dialog, "sha256")).to_have_text("not hashed yet: the library scan hashes it")
        expect(fact(dialog, "size")).to_have_text("1.0 MB")
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)

        scan_line.get_by_role("button", name="Scan now").click()
        expect(scan_line).to_contain_text("All 4 files hashed", timeout=30_000)
        expect(scan_line.get_by_role("button", name="Scan now")).to_be_enabled()

        page.get_by_label("Show", exact=True).select_option("duplicates")
        rows = page.locator("tbody tr[data-path]")
        expect(rows).to_have_count(2)
        group = page.locator(f'tr[data-group="{library}"]')
        expect(group).to_contain_text("2 copies of 2.1 MB")
        expect(group).to_contain_text("removing the copies frees 2.1 MB")
        keep = rows.first
        expect(keep).to_have_attribute("data-keep", "true")
        expect(keep.locator(".keep-badge")).to_have_text("Keep")
        expect(rows.nth(1)).to_have_attribute("data-keep", "false")
        kept_path, copy_path = keep.get_attribute("data-path"), rows.nth(1).get_attribute("data-path")
        assert {kept_path, copy_path} == {"loras/detail-tweaker.safetensors", "loras/backup/detail-tweaker.safetensors"}
        remove = page.get_by_role("button", name="Remove duplicates (frees 2.1 MB)")
        expect(remove).to_be_visible()
        screenshot(page, "models-duplicates")

        # the detail dialog, by keyboard: focus moves in, Escape closes it, focus comes back to the name
        name = keep.get_by_role("button", name=f"Details of {kept_path}")
        name.focus()
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="detail-tweaker.safetensors")
        expect(dialog.get_by_role("button", name="Close details")).to_be_focused()
        expect(fact(dialog, "sha256")).to_have_text(library)
        expect(fact(dialog, "title")).to_have_text(TITLE)
        expect(fact(dialog, "architecture")).to_have_text(ARCHITECTURE)
        expect(fact(dialog, "size")).to_have_text("2.1 MB")
        expect(fact(dialog, "duplicates")).to_have_text(copy_path)
        expect(fact(dialog, "use_count")).to_have_text("0")
        raw = dialog.locator(".header-keys")
        expect(raw.get_by_text("modelspec.architecture")).to_be_hidden()
        raw.get_by_text("All header keys (2)").click()
        expect(raw.get_by_text("modelspec.architecture")).to_be_visible()
        screenshot(page, "models-library")
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        expect(name).to_be_focused()

        # removing asks the server's dry run first: the confirmation says what it frees, and nothing is gone yet
        remove.click()
        confirm = page.get_by_role("dialog", name="Remove 1 duplicate copy?")
        expect(confirm).to_contain_text("This frees 2.1 MB")
        expect(confirm).to_contain_text(copy_path)
        assert (settings.models_dir / copy_path).exists()
        confirm.get_by_role("button", name="Remove duplicates").click()
        expect(page.get_by_role("status").filter(has_text="Removed 1 duplicate copy, freed 2.1 MB.")).to_be_visible()
        expect(rows).to_have_count(0)
        expect(page.locator("tbody")).to_contain_text("No duplicates")
        assert (settings.models_dir / kept_path).exists()
        assert not (settings.models_dir / copy_path).exists()

        page.get_by_label("Show", exact=True).select_option("all")
        expect(rows).to_have_count(3)
        assert errors == []


def test_unused_and_updates_views(settings, library, browser):
    from playwright.sync_api import expect

    with live_server(settings) as url, browser(width=360, height=740) as context:  # a phone: stacked rows
        page = context.new_page()
        errors = watch_errors(page)
        open_models(page, url)
        days = page.get_by_label("Unused for (days)")
        expect(days).to_be_hidden()
        page.get_by_label("Show", exact=True).select_option("unused")
        expect(days).to_have_value("30")
        rows = page.locator("tbody tr[data-path]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-path", "vae/old.safetensors")
        expect(rows.first).to_contain_text("never")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the unused view is {width}px wide at a 360px viewport"
        rows.first.get_by_role("button", name="Details of vae/old.safetensors").click()
        dialog = page.get_by_role("dialog", name="old.safetensors")
        expect(fact(dialog, "last_used")).to_have_text("never, as far as the dashboard saw")
        expect(fact(dialog, "title")).to_have_count(0)  # no header metadata: a plain file
        expect(dialog).to_contain_text("No safetensors or GGUF header metadata.")
        box = dialog.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, box
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        days.fill("120")
        expect(page.locator("tbody")).to_contain_text("Every model file was used or changed in the last 120 days.")
        expect(rows).to_have_count(0)

        page.get_by_label("Show", exact=True).select_option("updates")
        expect(days).to_be_hidden()
        expect(page.locator("tbody")).to_contain_text("No updates available.")
        expect(page.locator(".show-bar")).to_contain_text("the old file stays until the new one is verified")
        expect(page.get_by_role("button", name=re.compile("^Update all"))).to_have_count(0)

        page.get_by_label("Show", exact=True).select_option("all")
        page.get_by_label("Sort").select_option("last_used")
        expect(rows).to_have_count(4)
        assert os.path.exists(settings.models_dir / "vae" / "old.safetensors")
        assert errors == []


def test_detail_shows_what_civitai_knows_with_the_saved_preview(settings, browser):
    from playwright.sync_api import expect

    civitai = FakeCivitai()
    version = civitai.add_version(91, model_id=9, name="known.safetensors", size=MB)
    version.trained_words = ["wtrclr"]
    (settings.models_dir / "loras" / "known.safetensors").write_bytes(version.data)
    with running_civitai(civitai) as civitai_url, \
            live_server(settings.replace(civitai_endpoint=civitai_url, civitai_lookup=True)) as url, \
            browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/models")
        expect(page.locator("#live-status")).to_have_text("Live")
        scan_line = page.get_by_role("region", name="Library scan")
        scan_line.get_by_role("button", name="Scan now").click()
        expect(scan_line).to_contain_text("The 1 model file is hashed", timeout=30_000)
        page.get_by_role("button", name="Details of loras/known.safetensors").click()
        dialog = page.get_by_role("dialog", name="known.safetensors")
        expect(fact(dialog, "sha256")).to_have_text(version.sha256)
        expect(fact(dialog, "civitai_version")).to_have_text("v1.0")
        expect(fact(dialog, "civitai_base")).to_have_text("SDXL 1.0")
        expect(fact(dialog, "trained_words")).to_have_text("wtrclr")
        preview = dialog.get_by_role("img", name=re.compile("^Preview of"))
        expect(preview).to_be_visible()
        expect(preview).to_have_attribute("src", "api/models/loras/known.safetensors/preview")
        page.wait_for_function("img => img.complete && img.naturalWidth === 1",  # the dashboard's copy, loaded
                               arg=preview.element_handle())
        assert not [r for r in civitai.requests if r.path.startswith("/images/") and "Mozilla" in r.headers.get(
            "User-Agent", "")], "the browser fetched the preview from Civitai's host"
        dialog.get_by_role("button", name="Close", exact=True).click()
        expect(dialog).to_have_count(0)
        assert errors == []


def test_updates_view_updates_a_file_keeping_the_old_one_until_verified(settings, hub, browser):
    from playwright.sync_api import expect

    hub.add_file("org/up", "up.safetensors", data=b"old" * 100_000)
    write_preset(settings, "UP", [{"path": "loras/up.safetensors", "repo": "org/up", "file": "up.safetensors",
                                   "size": 300_000}])
    target = settings.models_dir / "loras" / "up.safetensors"
    with live_server(settings.replace(hf_endpoint=hub.url)) as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/downloads")
        expect(page.locator("#live-status")).to_have_text("Live")
        installed = fetch_json(url + "/api/presets/UP/install", "POST", {}, status=202)
        row = page.locator(f'li[data-download="{installed["download_id"]}"]')
        expect(row).to_have_attribute("data-status", "completed", timeout=60_000)

        newer = hub.add_file("org/up", "up.safetensors", data=b"new" * 120_000)
        page.goto(url + "/#/models")
        page.get_by_label("Show", exact=True).select_option("updates")
        bar = page.locator(".show-bar")
        expect(bar).to_contain_text("the old file stays until the new one is verified")
        bar.get_by_role("button", name="Check again").click()
        rows = page.locator("tbody tr[data-path]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-path", "loras/up.safetensors")
        expect(rows.first).to_contain_text("A newer version is available")
        expect(bar.get_by_role("button", name="Update all (1)")).to_be_visible()
        page.get_by_role("button", name="Update loras/up.safetensors").click()
        expect(page.get_by_role("status").filter(has_text="Updating loras/up.safetensors")).to_contain_text(
            "the old file stays until the new one is verified")
        assert target.read_bytes()[:3] in (b"old", b"new")  # never a missing or partial file at the path
        page.get_by_role("link", name="See it on the Downloads view").click()
        expect(page.locator("li.download-row[data-status=completed]")).to_have_count(2, timeout=60_000)
        assert sha256_of(target) == newer.sha256
        assert errors == []
