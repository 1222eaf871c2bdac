"""The page in a real browser when a script on the same machine has spent the rate limit's budget.

Synchronisation is Playwright's auto-waiting `expect(...)` only.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from browser import requires_browser, screenshot, watch_errors
from live_server import live_server

from dashboard.api.security import ratelimit

pytestmark = requires_browser

BUDGET = 6
COUNTED = "/api/auth/verify"


def spend_budget(url: str) -> int:
    """What a busy script does: call the API until it answers 429; how many calls went through."""
    through = 0
    while True:
        try:
            with urllib.request.urlopen(url + COUNTED, timeout=10):
                through += 1
        except urllib.error.HTTPError as error:
            assert error.code == 429
            return through


def test_the_page_waits_out_the_rate_limit_and_then_fills(settings, monkeypatch, browser):
    from playwright.sync_api import expect

    monkeypatch.setattr(ratelimit, "WINDOW", 3.0)  # a short window keeps the wait short
    with live_server(settings.replace(rate_limit=BUDGET)) as url, browser() as context:
        page = context.new_page()
        errors = watch_errors(page)
        spent: list[int] = []

        def spend_then_send(route):  # the script spends the budget just before the page's first call
            if not spent:
                spent.append(spend_budget(url))
            route.continue_()

        page.route(f"**{COUNTED}", spend_then_send)
        page.goto(url + "/#/presets")
        notice = page.locator("#rate-limit")
        expect(notice).to_have_text(re.compile(r"^Rate limited: retrying in \d+ s$"))
        screenshot(page, "rate-limited")
        expect(page.locator(".card[data-preset]").first).to_be_visible()
        expect(notice).to_be_hidden()
        expect(page.locator("#live-status")).to_have_text("Live")
        assert spent == [BUDGET] and errors == []
