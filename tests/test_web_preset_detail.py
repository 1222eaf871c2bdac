"""A preset's detail dialog and its card's true install total, in a real browser against the standalone server.

User presets in the workspace's presets folder, their files on the local hub: TOP depends on BASE, so installing
TOP downloads BASE too, and its card and detail say so; BASE's VAE is also OTHER's (a shared file); GATED's
repository is gated and no HF_TOKEN is set; HUGE does not fit on the disk.

Synchronisation is Playwright's auto-waiting `expect(...)` only. Screenshots: test-output/screenshots/.
"""

from __future__ import annotations

import re

import pytest
import yaml
from browser import requires_browser, screenshot, watch_errors
from downloads_support import write_preset
from live_server import live_server
from support import fetch_json

pytestmark = requires_browser

MB = 1024 * 1024


def hub_preset(settings, hub, preset_id, files, dependencies=(), gated=False, description=""):
    """A user preset whose files, `(path, size)`, are on the hub in the repository org/<id>, or in `repo` when given."""
    entries = []
    for path, size, *repo in files:
        repo = repo[0] if repo else f"org/{preset_id.lower()}"
        name = path.split("/")[-1]
        hub.add_file(repo, name, size=size, gated=gated)
        entries.append({"path": path, "repo": repo, "file": name, "size": size})
    write_preset(settings, preset_id, entries, dependencies=dependencies, gated=gated)
    if description:
        path = settings.data_dir / "presets" / f"{preset_id}.yaml"
        path.write_text(path.read_text() + yaml.safe_dump({"description": description}))


@pytest.fixture
def presets(settings, hub):
    hub_preset(settings, hub, "BASE", [("checkpoints/base.safetensors", 30 * MB), ("vae/base-vae.safetensors", 2 * MB)],
               description="The checkpoint and VAE other presets build on.")
    hub_preset(settings, hub, "TOP", [("loras/top.safetensors", 3 * MB)], dependencies=("BASE",),
               description="A LoRA for the Base checkpoint: installing it installs Base too.")
    hub_preset(settings, hub, "OTHER", [("vae/base-vae.safetensors", 2 * MB, "org/base")])
    hub_preset(settings, hub, "GATED", [("loras/gated.safetensors", MB)], gated=True,
               description="A model whose repository is gated.")
    hub_preset(settings, hub, "HUGE", [("checkpoints/huge.safetensors", 200 * 10**12)])


def open_presets(page, url):
    from playwright.sync_api import expect

    page.goto(url + "/#/presets")
    expect(page.locator("#live-status")).to_have_text("Live")
    page.get_by_label("Source").select_option("user")
    expect(page.locator("article.card")).to_have_count(5)


def test_card_and_detail_show_what_installing_downloads_dependencies_included(settings, hub, presets, browser):
    from playwright.sync_api import expect

    with live_server(settings.replace(hf_endpoint=hub.url)) as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        open_presets(page, url)
        top = page.locator('article[data-preset="TOP"]')
        # 3 MiB of its own, 32 MiB of BASE's: the button says the true total
        install = top.get_by_role("button", name="Install Top")
        expect(install).to_have_text("Install (36.7 MB)")
        expect(top.locator(".install-total")).to_have_text(
            "36.7 MB to download with its dependencies (its own files: 3.1 MB).")
        base = page.locator('article[data-preset="BASE"]')
        expect(base.get_by_role("button", name="Install Base")).to_have_text("Install (33.6 MB)")
        expect(base.locator(".install-total")).to_have_count(0)  # no dependencies: its own size is the total
        screenshot(page, "preset-detail-cards")

        # the keyboard opens the detail: focus moves into it
        details = top.get_by_role("button", name="Details of Top")
        details.focus()
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Top")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("button", name="Close details")).to_be_focused()
        expect(dialog).to_contain_text("A LoRA for the Base checkpoint: installing it installs Base too.")
        expect(dialog.locator('[data-fact="licence"]')).to_contain_text("not stated")
        licence = dialog.get_by_role("link", name="model page")
        expect(licence).to_have_attribute("href", f"{hub.url}/org/top")
        expect(licence).to_have_attribute("target", "_blank")
        expect(licence).to_have_attribute("rel", re.compile(r"\bnoopener\b"))

        # its own file and its dependency's files, each with its size and state
        files = dialog.locator(".detail-files tbody tr")
        expect(files).to_have_count(3)
        own = dialog.locator('tr[data-path="loras/top.safetensors"]')
        expect(own).to_contain_text("3.1 MB")
        expect(own).to_contain_text("To download: 3.1 MB")
        checkpoint = dialog.locator('tr[data-path="checkpoints/base.safetensors"]')
        expect(checkpoint).to_contain_text("from Base")
        expect(checkpoint).to_contain_text("To download: 31.5 MB")
        vae = dialog.locator('tr[data-path="vae/base-vae.safetensors"]')
        expect(vae).to_contain_text("Shared with Other")
        expect(own).not_to_contain_text("Shared with")

        dependency = dialog.locator('li[data-dependency="BASE"]')
        expect(dependency).to_contain_text("Base")
        expect(dependency).to_contain_text("To download: 33.6 MB")
        expect(dialog.locator(".plan-summary")).to_have_text(
            "Installing downloads 36.7 MB of 36.7 MB in all, dependencies included.")
        volume = dialog.locator(".detail-volumes li")
        expect(volume).to_have_count(1)
        expect(volume).to_contain_text(str(settings.models_dir))
        expect(volume).to_contain_text("✓ fits")
        expect(dialog.locator(".notice")).to_have_count(0)  # nothing gated, everything fits
        expect(dialog.get_by_role("button", name="Install (36.7 MB)")).to_be_enabled()
        screenshot(page, "preset-detail")

        # Escape closes it and gives the focus back to the Details button
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        expect(details).to_be_focused()

        # installing from the detail installs the dependency too; the detail then says everything is here
        details.click()
        dialog.get_by_role("button", name="Install (36.7 MB)").click()
        expect(dialog).to_have_count(0)
        expect(top).to_contain_text("✓ Installed", timeout=60_000)
        for path in ["loras/top.safetensors", "checkpoints/base.safetensors", "vae/base-vae.safetensors"]:
            assert (settings.models_dir / path).is_file(), path
        top.get_by_role("button", name="Details of Top").click()
        expect(dialog.locator(".plan-summary")).to_have_text("Nothing to download: every file is here.")
        expect(dialog.locator('li[data-dependency="BASE"]')).to_contain_text("✓ Installed")
        expect(dialog.locator('tr[data-path="checkpoints/base.safetensors"] .file-state')).to_have_text(
            re.compile("^(Verified|Present)$"))
        expect(dialog.get_by_role("button", name=re.compile("^Install"))).to_have_count(0)
        dialog.get_by_role("button", name="Close", exact=True).click()
        expect(dialog).to_have_count(0)
        assert errors == []


def test_detail_warns_of_gated_repositories_and_of_files_that_do_not_fit(settings, hub, presets, browser):
    from playwright.sync_api import expect

    with live_server(settings.replace(hf_endpoint=hub.url)) as url, browser(width=360, height=740) as context:
        page = context.new_page()
        errors = watch_errors(page)
        open_presets(page, url)
        page.locator('article[data-preset="GATED"]').get_by_role("button", name="Details of Gated").click()
        dialog = page.get_by_role("dialog", name="Gated")
        warning = dialog.locator('.notice-warn[data-repo="org/gated"]')
        expect(warning).to_contain_text("org/gated: gated: accept its licence on the model page and set HF_TOKEN")
        expect(warning).to_contain_text("No HF_TOKEN is set for the dashboard.")
        expect(warning.get_by_role("link", name="model page")).to_have_attribute("href", f"{hub.url}/org/gated")
        expect(dialog.get_by_role("button", name="Install (1.0 MB)")).to_be_enabled()  # the server's error says why
        dialog.get_by_role("button", name="Close details").click()
        expect(dialog).to_have_count(0)

        huge = page.locator('article[data-preset="HUGE"]')
        expect(huge.get_by_role("button", name="Install Huge")).to_have_text("Install (200.00 TB)")
        huge.get_by_role("button", name="Details of Huge").click()
        dialog = page.get_by_role("dialog", name="Huge")
        expect(dialog.locator('.detail-volumes li[data-fits="false"]')).to_contain_text("Not enough space.")
        install = dialog.get_by_role("button", name="Install (200.00 TB)")
        expect(install).to_be_disabled()
        expect(install).to_have_accessible_description(
            re.compile(r"^Cannot install: 200\.00 TB needed, [\d.]+ [KMGT]?B free\.$"))
        screenshot(page, "preset-detail-does-not-fit")
        width = dialog.evaluate("el => el.scrollWidth - el.clientWidth")
        assert width <= 0, f"the detail dialog overflows by {width}px at a 360px viewport"
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        assert fetch_json(url + "/api/downloads")["total"] == 0
        assert errors == []
