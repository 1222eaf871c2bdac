"""The Downloads page's limits in a real browser: shown from the server, saved back, refused values said."""

from __future__ import annotations

import re

from browser import requires_browser, screenshot, watch_errors
from downloads_support import write_preset
from live_server import live_server
from support import fetch_json

pytestmark = requires_browser


def test_the_download_limits_are_shown_and_saved(settings, hub, browser):
    from playwright.sync_api import expect

    size = 64 * 1024 * 1024
    hub.add_file("Wan-AI/Wan2.2-TI2V-5B", "wan2.2_ti2v_5B_fp16.safetensors", size=size).faults.throttle_bps = 2_000_000
    write_preset(settings, "WAN_BIG", [{"path": "diffusion_models/wan2.2_ti2v_5B_fp16.safetensors",
                                        "repo": "Wan-AI/Wan2.2-TI2V-5B", "file": "wan2.2_ti2v_5B_fp16.safetensors",
                                        "size": size}])
    with live_server(settings.replace(max_bandwidth=50_000_000, connections_per_file=4,
                                      hf_endpoint=hub.url)) as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        fetch_json(url + "/api/presets/WAN_BIG/install", "POST", {}, status=202)
        page.goto(url + "/#/downloads")
        expect(page.locator(".download-row").first).to_contain_text(re.compile(r"4 connections"))
        screenshot(page, "downloads")
        form = page.get_by_role("form", name="Download limits")
        bandwidth = form.get_by_label("Bandwidth, all downloads (MB/s)")
        expect(bandwidth).to_have_value("50")
        expect(form.get_by_label("Connections per file")).to_have_value("4")
        bandwidth.fill("")  # unlimited
        form.get_by_label("Connections in all").fill("6")
        form.get_by_label("Slow down while ComfyUI generates").uncheck()
        form.get_by_role("button", name="Save limits").click()
        expect(page.get_by_text("Download limits saved.")).to_be_visible()
        screenshot(page, "download-limits")
        page.reload()
        expect(form.get_by_label("Connections in all")).to_have_value("6")
        expect(bandwidth).to_have_value("")
        expect(form.get_by_label("Slow down while ComfyUI generates")).not_to_be_checked()
        form.get_by_label("Connections per file").fill("0")  # the browser lets it through: min is a hint
        form.get_by_label("Connections per file").evaluate("el => el.removeAttribute('min')")
        form.get_by_role("button", name="Save limits").click()
        expect(page.get_by_text("connections_per_file")).to_be_visible()  # the server's refusal names the field
        page.locator(".download-row").first.get_by_role("button", name=re.compile("^Cancel")).click()
        assert errors == []
