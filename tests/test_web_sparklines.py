"""Sparklines of the last minutes in a real browser: on the page's Overview and in ComfyUI's sidebar tab.

The test app samples every 0.2 s, so a few samples arrive within moments; Playwright's `expect` waits for them.
"""

from __future__ import annotations

import re

from browser import requires_browser, screenshot, watch_errors
from comfyui_standin import clean_env, install_model_management, served_custom_node
from live_server import live_server

pytestmark = requires_browser

GIB = 1024**3
#: "over the last 3 seconds: 12% to 85%, now 40%", or "...: steady at 42%" when the readings did not move
SUMMARY = r" over the last (\d+ )?(second|seconds|minute|minutes): "
SOME_PERCENT = SUMMARY + r"(\d+% to \d+%, now |steady at )\d+%$"


class OneGpu:
    """A GPU reader that always sees one busy GPU."""

    def __init__(self, *args, **kwargs):
        pass

    def read(self):
        return [{"index": 0, "name": "Test GPU", "uuid": "GPU-0", "pci_bus_id": "00000000:01:00.0",
                 "utilization_percent": 42, "memory_used_gb": 31.5, "memory_total_gb": 79.19, "memory_percent": 39.8,
                 "temperature_c": 61, "power_w": 250.0, "power_limit_w": 700.0, "vendor": "nvidia", "source": "nvml",
                 "processes": [], "visible_to_comfyui": True, "comfyui": False}]

    def close(self):
        pass


def test_overview_draws_sparklines_of_cpu_ram_and_each_gpu(settings, monkeypatch, browser):
    from playwright.sync_api import expect

    monkeypatch.setattr("dashboard.services.container.GpuReader", OneGpu)
    with live_server(settings) as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        system = page.locator(".panel-system")
        expect(system.get_by_role("img", name=re.compile("^CPU" + SOME_PERCENT))).to_be_visible()
        expect(system.get_by_role("img", name=re.compile("^RAM" + SOME_PERCENT))).to_be_visible()
        gpus = page.locator(".panel-gpus")
        utilization, vram = (re.compile(f"^GPU 0 {name}{SUMMARY}steady at {value}$")
                             for name, value in (("utilization", "42%"), ("VRAM", "40%")))
        expect(gpus.get_by_role("img", name=utilization)).to_be_visible()
        expect(gpus.get_by_role("img", name=vram)).to_be_visible()
        line = system.locator("svg.sparkline polyline").first
        expect(line).to_have_attribute("points", re.compile(r"^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$"))  # a line, not a dot
        screenshot(page, "overview-sparklines")
        page.goto(url + "/#/presets")  # samples are kept while another view is open
        page.goto(url + "/#/overview")
        expect(system.get_by_role("img", name=re.compile("^CPU" + SUMMARY))).to_be_visible()
        assert errors == []


def test_sidebar_draws_sparklines_under_its_gauges(monkeypatch, tmp_path, browser):
    from playwright.sync_api import expect

    clean_env(monkeypatch)
    monkeypatch.setenv("DASHBOARD_OFFICIAL_TEMPLATES", "false")
    install_model_management(monkeypatch, MpsDevice(), 64 * GIB, 48 * GIB)  # ComfyUI computes on Apple's GPU
    with served_custom_node(monkeypatch, tmp_path) as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(url + "/")
        page.locator('button[aria-label="ComfyUI Dashboard"]').click()
        vitals = page.locator(".cdash").get_by_role("region", name="System")
        expect(vitals.get_by_role("img", name=re.compile("^CPU" + SOME_PERCENT))).to_be_visible()
        expect(vitals.get_by_role("img", name=re.compile("^RAM" + SOME_PERCENT))).to_be_visible()
        comfyuis = page.evaluate("""async () => (await (await fetch("/dashboard/api/system/status")).json())
            .gpus.filter((g) => g.comfyui).map((g) => g.index)""")
        assert len(comfyuis) == 1
        vram = re.compile(f"^GPU {comfyuis[0]} VRAM{SUMMARY}steady at 25%$")  # 16 of 64 GB, as ComfyUI says
        expect(vitals.get_by_role("img", name=vram)).to_be_visible()
        screenshot(page, "sidebar-sparklines")
        assert errors == []


class MpsDevice:
    """What torch.device("mps") looks like to the dashboard."""

    type = "mps"
    index = None

    def __str__(self) -> str:
        return "mps"
