"""The Downloads page's limits in a real browser: shown from the server, saved back, refused values said."""

from __future__ import annotations

from browser import browser, requires_browser, screenshot, watch_errors
from live_server import live_server

pytestmark = requires_browser


def test_the_download_limits_are_shown_and_saved(settings):
    from playwright.sync_api import expect

    with live_server(settings.replace(max_bandwidth=50_000_000, connections_per_file=4)) as url, \
            browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/#/downloads")
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
        assert errors == []
