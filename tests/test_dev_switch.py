"""DASHBOARD_DEV: in development, pages of any origin may call the API (as CORS_ORIGINS=* allows)."""

from __future__ import annotations

import logging

PREFLIGHT = {"Origin": "http://anywhere.example", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}


async def test_with_the_switch_any_origin_may_call_the_api(make_client, caplog):
    with caplog.at_level(logging.WARNING):
        client = await make_client(dev=True)
    preflight = await client.options("/api/downloads/dl_x/pause", headers=PREFLIGHT)
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    response = await client.post("/api/downloads/dl_x/pause", headers={"Origin": "http://anywhere.example"})
    assert response.status == 404  # let through to the handler: there is no such download
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([m for m in warnings if "Development mode" in m]) == 1
    assert "shared network" in " ".join(warnings)


async def test_without_the_switch_other_origins_are_refused(client, caplog):
    preflight = await client.options("/api/downloads/dl_x/pause", headers=PREFLIGHT)
    assert preflight.status != 204 and "Access-Control-Allow-Origin" not in preflight.headers
    response = await client.post("/api/downloads/dl_x/pause", headers={"Origin": "http://anywhere.example"})
    assert response.status == 403
    assert "Development mode" not in caplog.text
