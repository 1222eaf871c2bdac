"""The sidebar tab in a real browser, in a stand-in of ComfyUI's frontend (its extension API) and server.

The stand-in serves an editor page that loads web/comfyui/ as ComfyUI does, with the dashboard
mounted at /dashboard by the custom node. The real frontend is the integration tier
(test_comfyui_web_real.py). Synchronisation is Playwright's auto-waiting `expect(...)`; the one test
about retries fast-forwards the page's clock instead of waiting.
"""

from __future__ import annotations

import re

import pytest
import yaml
from browser import requires_browser, watch_errors
from comfyui_standin import COMFYUI_0_3_64_FOLDERS, clean_env, served_custom_node

pytestmark = requires_browser

TOOLTIP = "ComfyUI Dashboard"
#: Counts the sockets the page opens and the types of the messages they receive.
SOCKET_SPY = """(() => {
    window.socketsOpened = 0;
    window.socketMessages = [];
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            window.socketsOpened += 1;
            this.addEventListener("message", (event) => window.socketMessages.push(JSON.parse(event.data).type));
        }
    };
})()"""
SIXTY_MIB = 60 * 1024 * 1024  # 62.9 MB: the size every view shows for it


@pytest.fixture
def comfyui(monkeypatch, tmp_path, hub):
    """Start the stand-in with these options; returns (url, base folder)."""
    clean_env(monkeypatch)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("DASHBOARD_OFFICIAL_TEMPLATES", "false")

    def start(folder_types=None):
        return served_custom_node(monkeypatch, tmp_path, folder_types)

    return start


def user_preset(base, preset_id: str, name: str, size: int) -> None:
    """A user preset of one LoRA, `org/<id>` on the fake hub."""
    file = f"{preset_id.lower()}.safetensors"
    folder = base / "user" / "dashboard" / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{preset_id}.yaml").write_text(yaml.safe_dump({
        "id": preset_id, "name": name, "category": "Image Generation", "type": "image",
        "files": [{"path": f"loras/{file}", "size": size,
                   "source": {"repo": f"org/{preset_id.lower()}", "file": file}}]}))


def hub_preset(base, hub, preset_id: str, name: str, size: int = 1024 * 1024, **file_options) -> None:
    """A user preset of one LoRA that is on the fake hub."""
    hub.add_file(f"org/{preset_id.lower()}", f"{preset_id.lower()}.safetensors", size=size, **file_options)
    user_preset(base, preset_id, name, size)


def open_tab(page):
    page.locator(f'button[aria-label="{TOOLTIP}"]').click()
    return page.locator(".cdash")


def install(page, preset_id: str) -> None:
    """Start an install through the API, as another tab or a script would."""
    status = page.evaluate("""async (id) => (await fetch(`/dashboard/api/presets/${id}/install`, {method: "POST",
        headers: {"Content-Type": "application/json"}, body: "{}"})).status""", preset_id)
    assert status == 202


def test_toasts_name_the_preset_and_say_the_gated_hint_once_with_the_tab_never_opened(comfyui, tmp_path, hub, browser):
    from playwright.sync_api import expect

    hub_preset(tmp_path, hub, "ALPHA", "Alpha LoRA")
    hub_preset(tmp_path, hub, "LOCKED", "Locked LoRA", gated=True)
    with comfyui() as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.add_init_script(SOCKET_SPY)
        page.goto(url + "/")
        page.wait_for_function("window.socketMessages.includes('subscribed')")  # before the installs start
        install(page, "ALPHA")
        expect(page.get_by_role("status").filter(has_text=re.compile("^Alpha LoRA installed"))).to_be_visible(
            timeout=30_000)
        install(page, "LOCKED")
        failed = page.get_by_role("alert").filter(has_text=re.compile("^Locked LoRA: download failed"))
        expect(failed).to_be_visible(timeout=30_000)
        expect(failed).to_contain_text("is gated")
        assert failed.inner_text().count("HF_TOKEN") == 1, failed.inner_text()
        assert not page.locator(".cdash").count()  # all of it with the tab closed
        assert errors == []


def test_reopening_the_tab_shows_the_results_of_its_search(comfyui, tmp_path, hub, browser):
    from playwright.sync_api import expect

    hub_preset(tmp_path, hub, "BETA", "Beta")
    with comfyui() as url, browser() as context:
        page = context.new_page()
        page.goto(url + "/")
        tab = open_tab(page)
        tab.get_by_label("Find a preset to install").fill("beta")
        expect(tab.get_by_role("button", name="Install Beta")).to_be_visible()
        open_tab(page)  # closes it
        expect(tab).to_be_hidden()
        tab = open_tab(page)
        expect(tab.get_by_label("Find a preset to install")).to_have_value("beta")
        expect(tab.get_by_role("button", name="Install Beta")).to_be_visible()


def test_one_size_rule_in_the_sidebar_and_the_page(comfyui, tmp_path, hub, browser):
    from playwright.sync_api import expect

    user_preset(tmp_path, "SIXTY", "Sixty", SIXTY_MIB)
    model = tmp_path / "models" / "loras" / "sixty.safetensors"
    model.parent.mkdir(parents=True)
    with open(model, "wb") as handle:
        handle.truncate(SIXTY_MIB)
    with comfyui() as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        tab = open_tab(page)
        tab.get_by_label("Find a preset to install").fill("sixty")
        expect(tab.locator('[data-preset="SIXTY"]')).to_contain_text("Sixty · 62.9 MB")
        pairs = page.evaluate("""async () => {
            const sidebar = await import("/extensions/comfyui-dashboard/dashboard_sidebar.js");
            const dom = await import("/dashboard/assets/dom.js");
            const sizes = [0, 999, 1000, 999499, 999500, 62914560, 999949999, 999950000, 1e9, 14.5e9, 999.96e9,
                           1.2e12, 5e15, null, undefined, NaN];
            const rates = [0, 0.05, 0.9994, 1, 125.4, 2310.6];
            return [...sizes.map((n) => [sidebar.fmtBytes(n), dom.fmtBytes(n)]),
                    ...rates.map((r) => [sidebar.fmtRate(r), dom.fmtRate(r)])];
        }""")
        assert all(a == b for a, b in pairs), pairs
        assert [a for a, _b in pairs][:9] == ["0 B", "999 B", "1 KB", "999 KB", "1.0 MB", "62.9 MB", "999.9 MB",
                                              "1.0 GB", "1.0 GB"]
        full = context.new_page()
        full.goto(url + "/dashboard/")
        storage = full.locator(".panel-storage")
        expect(storage.locator(".models-total")).to_contain_text("62.9 MB")
        expect(storage.locator(".type-size")).to_have_text("62.9 MB · 1")
        full.goto(url + "/dashboard/#/presets")
        expect(full.locator('article[data-preset="SIXTY"] .facts')).to_contain_text("62.9 MB")
        full.goto(url + "/dashboard/#/models")
        expect(full.locator('tr[data-path="loras/sixty.safetensors"]')).to_contain_text("62.9 MB")
        assert errors == []


def test_presets_for_a_newer_comfyui_say_so_instead_of_offering_to_install(comfyui, browser):
    from playwright.sync_api import expect

    with comfyui(COMFYUI_0_3_64_FOLDERS) as url, browser() as context:
        page = context.new_page()
        page.goto(url + "/")
        tab = open_tab(page)
        tab.get_by_label("Find a preset to install").fill("ltx-2 19b")
        row = tab.locator('[data-preset="LTX_2_T2V"]')
        expect(row).to_contain_text("needs a newer ComfyUI")
        expect(row.get_by_role("button")).to_have_count(0)
        page.goto(url + "/dashboard/#/presets")
        card = page.locator('article[data-preset="LTX_2_T2V"]')
        expect(card).to_contain_text("Needs a newer ComfyUI: this one has no latent_upscale_models model folder.")
        expect(card.get_by_role("button", name=re.compile("^Install"))).to_have_count(0)
        expect(page.locator('article[data-preset="WAN_22_5B_TIV2"]').get_by_role("button", name=re.compile(
            "^Install "))).to_be_visible()


def test_a_dashboard_that_failed_to_start_says_why_and_stops_trying(comfyui, monkeypatch, tmp_path, browser):
    from playwright.sync_api import expect

    (tmp_path / "taken").write_text("not a folder")
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(tmp_path / "taken"))
    with comfyui() as url, browser() as context:
        page = context.new_page()
        page.add_init_script(SOCKET_SPY)
        page.clock.install()
        page.goto(url + "/")
        tab = open_tab(page)
        failure = tab.get_by_role("alert")
        expect(failure).to_have_text(re.compile(r"^ComfyUI Dashboard failed to start: DASHBOARD_DATA_DIR: the data "
                                                r"folder .*taken cannot be used"))
        expect(tab.get_by_role("status")).to_have_text("failed")
        expect(tab.get_by_role("region", name="System")).to_be_hidden()
        page.clock.run_for(10 * 60 * 1000)  # ten minutes of retry timers, were there any
        open_tab(page)
        tab = open_tab(page)
        expect(tab.get_by_role("alert")).to_contain_text("ComfyUI Dashboard failed to start")
        assert page.evaluate("window.socketsOpened") == 0  # health is asked first: no socket to a dashboard that failed


def needing_workflow(hub_url: str, name: str = "needed.safetensors") -> dict:
    """A workflow as the editor saves it: one checkpoint loader whose model is declared with its URL on the hub."""
    return {"id": "0d5c", "revision": 0, "last_node_id": 1, "last_link_id": 0, "links": [], "groups": [],
            "config": {}, "extra": {}, "version": 0.4, "nodes": [{
                "id": 1, "type": "CheckpointLoaderSimple", "pos": [0, 0], "size": [315, 98], "flags": {}, "order": 0,
                "mode": 0, "inputs": [], "outputs": [],
                "properties": {"Node name for S&R": "CheckpointLoaderSimple", "models": [{
                    "name": name, "url": f"{hub_url}/org/needed/resolve/main/{name}", "directory": "checkpoints"}]},
                "widgets_values": [name]}]}


def test_the_open_workflow_says_what_it_misses_and_installs_it_then_refreshes_the_loaders(comfyui, tmp_path, hub,
                                                                                          browser):
    from playwright.sync_api import expect

    hub.add_file("org/needed", "needed.safetensors", size=3 * 1024 * 1024)
    with comfyui() as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        page.wait_for_function("window.app")
        page.evaluate("(w) => window.app.loadGraphData(w)", needing_workflow(hub.url))
        notice = page.get_by_role("status").filter(has_text=re.compile("^This workflow is missing 1 model file"))
        expect(notice).to_contain_text("Open the Dashboard tab", timeout=30_000)  # said with the tab closed
        tab = open_tab(page)
        needs = tab.get_by_role("region", name="This workflow")
        expect(needs).to_contain_text("1 of 1 model files missing.", timeout=30_000)
        expect(needs.get_by_role("list", name="Missing model files")).to_contain_text("needed.safetensors")
        needs.get_by_role("button", name="Install 1 missing file (3.1 MB)").click()
        expect(needs).to_contain_text("✓ All 1 model file it loads is installed.", timeout=30_000)
        assert (tmp_path / "models" / "checkpoints" / "needed.safetensors").stat().st_size == 3 * 1024 * 1024
        page.wait_for_function("window.commandsRun.includes('Comfy.RefreshNodeDefinitions')")
        expect(page.get_by_role("status").filter(has_text=re.compile("^needed.safetensors installed"))).to_be_visible()
        assert page.get_by_role("status").filter(has_text="This workflow is missing").count() == 1  # told once
        assert errors == []


def test_a_workflow_whose_files_cannot_be_installed_says_why(comfyui, hub, browser):
    from playwright.sync_api import expect

    workflow = needing_workflow("https://example.com")  # not a host downloads may come from
    with comfyui() as url, browser() as context:
        page = context.new_page()
        page.goto(url + "/")
        tab = open_tab(page)
        page.evaluate("(w) => window.app.loadGraphData(w)", workflow)
        needs = tab.get_by_role("region", name="This workflow")
        expect(needs).to_contain_text("example.com is not a host downloads may come from")
        expect(needs.get_by_role("button")).to_have_count(0)
        assert not page.get_by_role("status").filter(has_text="This workflow is missing").count()  # the tab is open
