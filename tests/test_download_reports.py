"""What a download reports: refused tokens, unreachable hosts, bugs that are not retried, estimates."""

from __future__ import annotations

from downloads_support import FAST_RETRY, Events, write_preset

from dashboard.api.context import SERVICES
from dashboard.services.downloads import sources

MB = 1024 * 1024


async def start(make_client, settings, hub_url, **changes):
    write_preset(settings, "TINY", [{"path": "loras/tiny.safetensors", "repo": "org/tiny",
                                     "file": "weights/tiny.safetensors", "size": MB}])
    client = await make_client(hf_endpoint=hub_url, **changes)
    client.app[SERVICES].downloads.transfer.retry = FAST_RETRY
    events = Events(client)
    response = await client.post("/api/presets/TINY/install", json={})
    assert response.status == 202, await response.text()
    return await events.wait("error")


async def test_a_refused_token_on_a_gated_repo_says_it_was_refused(make_client, settings, hub):
    hub.add_file("org/tiny", "weights/tiny.safetensors", size=MB, gated=True)
    error = await start(make_client, settings, hub.url, hf_token="hf_not_a_token_the_hub_knows")
    assert error["details"]["reason"] == "token_refused"
    assert "refused HF_TOKEN" in error["message"]
    assert error["details"]["model_page"].endswith("/org/tiny")


async def test_an_unreachable_hub_names_the_host_and_the_setting(make_client, settings):
    from processes import free_port

    port = free_port()
    error = await start(make_client, settings, f"http://127.0.0.1:{port}")
    assert f"cannot reach 127.0.0.1:{port}: check the network or HF_ENDPOINT" in error["message"]


async def test_a_bug_while_resolving_is_reported_once_not_retried(make_client, settings, hub, monkeypatch):
    hub.add_file("org/tiny", "weights/tiny.safetensors", size=MB)
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise KeyError("a bug, not the network")

    monkeypatch.setattr(sources, "get_hf_file_metadata", broken)
    error = await start(make_client, settings, hub.url)
    assert len(calls) == 1
    assert error["code"] == "DOWNLOAD_FAILED" and "KeyError" in error["message"]
    assert "Gave up after" not in error["message"]


async def test_an_install_estimates_its_time_from_recent_throughput(make_client, settings, hub):
    first = hub.add_file("org/tiny", "weights/first.safetensors", size=3 * MB)
    first.faults.throttle_bps = 2 * MB
    hub.add_file("org/tiny", "weights/second.safetensors", size=8 * MB)
    for preset_id, name, size in (("FIRST", "first", 3 * MB), ("SECOND", "second", 8 * MB)):
        write_preset(settings, preset_id, [{"path": f"loras/{name}.safetensors", "repo": "org/tiny",
                                            "file": f"weights/{name}.safetensors", "size": size}])
    client = await make_client(hf_endpoint=hub.url)
    events = Events(client)
    answer = await (await client.post("/api/presets/FIRST/install", json={})).json()
    assert answer["estimated_time_seconds"] is None  # nothing measured yet
    await events.wait("download_complete")
    answer = await (await client.post("/api/presets/SECOND/install", json={})).json()
    assert isinstance(answer["estimated_time_seconds"], int) and answer["estimated_time_seconds"] >= 1
