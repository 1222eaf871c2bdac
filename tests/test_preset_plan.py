"""The plan before the first byte (GET /api/presets/{id}/plan, the `preset_plan` action, `presets plan`):
true totals with dependencies and shared files, paused `.part` files, free space, and the Hub's
answer for gated repositories with no token, a good one and a bad one."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from downloads_support import FAST_RETRY, write_preset
from support import put_model, until

from dashboard import provision
from dashboard.api.context import SERVICES

MB = 1024 * 1024


@pytest.fixture
def app(make_client, hub):
    async def start(**changes):
        client = await make_client(hf_endpoint=hub.url, **changes)
        client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
        return client

    return start


async def plan_of(client, preset_id, status=200):
    response = await client.get(f"/api/presets/{preset_id}/plan")
    assert response.status == status, await response.text()
    return await response.json()


def base_and_addon(settings, hub, gated=False):
    """BASE (a 6 MB encoder and a 2 MB VAE) and ADDON (1 MB of its own, needs BASE); SHARED lists the VAE too."""
    hub.add_file("org/base", "encoder.safetensors", size=6 * MB, gated=gated)
    hub.add_file("org/base", "vae.safetensors", size=2 * MB, gated=gated)
    hub.add_file("org/addon", "addon.safetensors", size=MB)
    write_preset(settings, "BASE", [
        {"path": "text_encoders/encoder.safetensors", "repo": "org/base", "file": "encoder.safetensors",
         "size": 6 * MB},
        {"path": "vae/vae.safetensors", "repo": "org/base", "file": "vae.safetensors", "size": 2 * MB}], gated=gated)
    write_preset(settings, "ADDON", [{"path": "loras/addon.safetensors", "repo": "org/addon",
                                      "file": "addon.safetensors", "size": MB}], dependencies=("BASE",))
    write_preset(settings, "SHARED", [{"path": "vae/vae.safetensors", "repo": "org/base", "file": "vae.safetensors",
                                       "size": 2 * MB}])


async def test_the_plan_counts_dependencies_and_the_install_queues_exactly_that(app, settings, hub):
    base_and_addon(settings, hub)
    client = await app()
    listing = {p["id"]: p for p in (await (await client.get("/api/presets")).json())["presets"]}
    assert listing["ADDON"]["download_bytes"] == MB and listing["ADDON"]["install_bytes"] == 9 * MB
    plan = await plan_of(client, "ADDON")
    assert plan["preset_id"] == "ADDON" and plan["bytes_to_download"] == 9 * MB and plan["total_bytes"] == 9 * MB
    files = {f["path"]: f for f in plan["files"]}
    assert list(files) == ["text_encoders/encoder.safetensors", "vae/vae.safetensors", "loras/addon.safetensors"]
    assert files["vae/vae.safetensors"]["preset_id"] == "BASE"
    assert files["vae/vae.safetensors"]["shared_with"] == ["SHARED"]
    assert files["loras/addon.safetensors"]["shared_with"] == []
    assert all(f["download"] and not f["present"] and f["bytes_to_download"] == f["size_bytes"] for f in files.values())
    assert plan["dependencies"] == [{"id": "BASE", "name": "Base", "installed": False, "bytes_to_download": 8 * MB}]
    assert plan["fits"] is True and len(plan["volumes"]) == 1
    volume = plan["volumes"][0]
    assert volume["needed_bytes"] == 9 * MB and volume["free_bytes"] > volume["needed_bytes"] and volume["fits"]
    assert plan["access"] == {"ok": True, "hf_token": False, "repos": []}  # nothing gated: the Hub is not asked
    assert not [r for r in hub.requests if r.path.endswith("/auth-check")]
    assert (await (await client.get("/api/downloads")).json())["total"] == 0  # a plan queues nothing

    answer = await (await client.post("/api/presets/ADDON/install", json={})).json()
    job = await (await client.get(f"/api/downloads/{answer['download_id']}")).json()
    assert job["bytes_total"] == plan["bytes_to_download"]


async def test_files_already_there_are_not_counted_and_a_paused_part_counts_as_held(app, settings, hub):
    base_and_addon(settings, hub)
    put_model(settings.models_dir, "vae/vae.safetensors", size=2 * MB)  # the user put it there
    encoder = hub.repos["org/base"]["main"]["encoder.safetensors"]
    encoder.faults.hold_at = 4 * MB  # the encoder's download stops after 4 MB until released
    client = await app(rate_limit=0)  # polled below
    plan = await plan_of(client, "BASE")
    vae = next(f for f in plan["files"] if f["path"] == "vae/vae.safetensors")
    assert vae["present"] and not vae["verified"] and not vae["download"] and vae["bytes_to_download"] == 0
    assert plan["bytes_to_download"] == 6 * MB

    answer = await (await client.post("/api/presets/BASE/install", json={})).json()

    async def written() -> bool:
        job = await (await client.get(f"/api/downloads/{answer['download_id']}")).json()
        return job["progress"] >= 50

    await until(written, timeout=60, what="half of the encoder written", interval=0.05)
    await client.post(f"/api/downloads/{answer['download_id']}/pause")
    encoder.faults.release()
    plan = await plan_of(client, "BASE")
    encoder_entry = next(f for f in plan["files"] if f["path"] == "text_encoders/encoder.safetensors")
    job = await (await client.get(f"/api/downloads/{answer['download_id']}")).json()
    assert job["status"] == "paused" and job["bytes_done"] >= 3 * MB
    assert encoder_entry["download"] and encoder_entry["bytes_to_download"] == 6 * MB - job["bytes_done"]
    assert plan["bytes_to_download"] == encoder_entry["bytes_to_download"]


async def test_a_plan_that_does_not_fit_says_which_volume(app, settings, hub):
    hub.add_file("org/huge", "huge.safetensors", size=MB)
    write_preset(settings, "HUGE", [{"path": "loras/huge.safetensors", "repo": "org/huge", "file": "huge.safetensors",
                                     "size": 10**16}])
    client = await app()
    plan = await plan_of(client, "HUGE")
    assert plan["fits"] is False and plan["bytes_to_download"] == 10**16
    (volume,) = plan["volumes"]
    assert volume["fits"] is False and volume["needed_bytes"] == 10**16 and volume["free_bytes"] < 10**16
    assert (await (await client.get("/api/downloads")).json())["total"] == 0


@pytest.mark.parametrize(("token", "status", "ok"), [
    (None, "needs_token", False), ("hf_bad", "token_refused", False), ("hf_good", "granted", True)])
async def test_gated_files_ask_the_hub_whether_the_token_is_let_in(app, settings, hub, token, status, ok):
    base_and_addon(settings, hub, gated=True)
    hub.tokens.add("hf_good")
    client = await app(hf_token=token)
    plan = await plan_of(client, "ADDON")
    assert plan["access"]["ok"] is ok and plan["access"]["hf_token"] is (token is not None)
    (repo,) = plan["access"]["repos"]
    assert repo["repo"] == "org/base" and repo["status"] == status
    assert repo["model_page"] == f"{hub.url}/org/base" and repo["message"]
    checks = [r for r in hub.requests if r.path == "/api/models/org/base/auth-check"]
    assert len(checks) == 1  # one request per repository, not per file
    assert checks[0].headers.get("Authorization") == (f"Bearer {token}" if token else None)


async def test_an_unknown_or_unsupported_preset_is_refused(app, settings):
    client = await app()
    assert (await plan_of(client, "NOPE", status=404))["error"]["code"] == "PRESET_NOT_FOUND"


async def test_the_plan_over_the_socket(app, settings, hub):
    base_and_addon(settings, hub)
    client = await app()
    async with client.ws_connect("/ws") as socket:
        await socket.send_json({"type": "action", "action": "preset_plan", "id": "p1",
                                "data": {"preset_id": "ADDON"}})
        while (message := await asyncio.wait_for(socket.receive_json(), 30))["type"] != "result":
            pass
    assert message["success"] and message["data"]["bytes_to_download"] == 9 * MB


def test_the_plan_command_prints_the_plan_and_fails_when_it_would_not_install(settings, hub):
    base_and_addon(settings, hub, gated=True)
    settings = settings.replace(hf_endpoint=hub.url)
    out, err = io.StringIO(), io.StringIO()
    assert provision.run(settings, "plan", ["ADDON"], out=out, err=err) == 1  # gated, no token
    text = out.getvalue()
    assert "ADDON (Addon): 9.0MB to download" in text and "needs BASE (Base): 8.0MB to download" in text
    assert "vae/vae.safetensors" in text and "(also in SHARED)" in text
    assert "access org/base: needs_token" in text and f"{hub.url}/org/base" in text

    hub.tokens.add("hf_good")
    out = io.StringIO()
    assert provision.run(settings.replace(hf_token="hf_good"), "plan", ["ADDON"], as_json=True, out=out, err=err) == 0
    (plan,) = json.loads(out.getvalue())
    assert plan["bytes_to_download"] == 9 * MB and plan["access"]["ok"] is True

    err = io.StringIO()
    assert provision.run(settings, "plan", ["NOPE"], out=io.StringIO(), err=err) == 1
    assert "NOPE: No preset with id 'NOPE'" in err.getvalue()
