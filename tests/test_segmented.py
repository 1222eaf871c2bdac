"""One file over several connections, against the local hub: right bytes whatever goes wrong."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import aiohttp
import pytest
from downloads_support import FAST_RETRY, sha256_of

from dashboard.services.downloads.budget import Bandwidth, Connections
from dashboard.services.downloads.sources import Tokens
from dashboard.services.downloads.transfer import Transfer, part_paths

MIB = 1024 * 1024


@pytest.fixture
async def make_transfer(hub):
    sessions = []

    def make(per_file=4, total=16, rate=None, sock_read=5.0):
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=sock_read)
        session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        sessions.append(session)
        return Transfer(session, Tokens(hf_endpoint=hub.url), FAST_RETRY, Connections(total, per_file),
                        Bandwidth(rate), min_piece=MIB)

    yield make
    for session in sessions:
        await session.close()


async def fetch(transfer, tmp_path, hub_file, on_progress=lambda done, total: None):
    seen = []

    def progress(done, total, connections):
        seen.append(connections)
        on_progress(done, total)

    target = tmp_path / "models" / hub_file.path
    spec = {"repo": hub_file.repo_id, "repo_file": hub_file.path, "revision": "main"}
    result = await transfer.fetch(target, spec, progress)
    assert result.verified and result.sha256 == hub_file.sha256 == sha256_of(target)
    assert not part_paths(target)[0].exists()
    return max(seen)


def gets(hub, hub_file):
    """The GETs of a file's bytes, from the Hub or its CDN."""
    return [r for r in hub.requests if r.method == "GET" and (hub_file.sha256 in r.path or r.path == hub_file.url_path)]


@pytest.mark.parametrize("size", [4 * MIB + 1, 7_340_033])  # one byte over whole pieces; a prime
async def test_ranges_from_several_connections_make_the_exact_file(make_transfer, tmp_path, hub, size):
    hub_file = hub.add_file("org/m", "m.safetensors", size=size)
    hub_file.faults.throttle_bps = 8 * MIB
    connections = await fetch(make_transfer(), tmp_path, hub_file)
    assert connections > 1 and hub.peak_downloads > 1
    assert hub_file.bytes_sent == size  # every byte fetched once


async def test_a_dropped_connection_resumes_only_its_own_range(make_transfer, tmp_path, hub):
    size = 8 * MIB
    hub_file = hub.add_file("org/m", "m.safetensors", size=size)
    hub_file.faults.throttle_bps = 8 * MIB
    hub_file.faults.drop_after, hub_file.faults.fault_ranges_from = 300_000, size // 2
    await fetch(make_transfer(), tmp_path, hub_file)
    assert hub_file.bytes_sent < size + MIB  # at most a little of the dropped range again
    ranges = [r.range for r in gets(hub, hub_file)]
    first_late = next(r for r in ranges if r[0] >= size // 2)
    assert any(first_late[0] < r[0] < (r[1] or size) for r in ranges if r is not first_late
               and r[0] < (first_late[1] or size))  # picked up inside the dropped range, not at its start


async def test_a_stalled_connection_does_not_hold_up_the_others(make_transfer, tmp_path, hub):
    size = 8 * MIB
    hub_file = hub.add_file("org/m", "m.safetensors", size=size)
    hub_file.faults.throttle_bps = 8 * MIB
    hub_file.faults.stall_after, hub_file.faults.fault_ranges_from = 200_000, size // 2
    done_while_stalled = []

    def note(done, total):
        if hub.active_downloads and done >= size - MIB:
            done_while_stalled.append(done)

    await fetch(make_transfer(sock_read=1.0), tmp_path, hub_file, note)
    assert done_while_stalled  # the other ranges were fetched while one connection hung
    assert hub_file.bytes_sent <= 1.25 * size  # the stalled range again, and what a stolen range had in flight


async def test_a_server_that_stops_answering_ranges_still_gives_the_right_file(make_transfer, tmp_path, hub):
    hub_file = hub.add_file("org/m", "m.safetensors", size=6 * MIB)
    hub_file.faults.throttle_bps = 8 * MIB
    hub_file.faults.ignore_range_after = 1
    await fetch(make_transfer(), tmp_path, hub_file)


async def test_an_expired_cdn_url_is_resolved_again(make_transfer, tmp_path, hub):
    hub.cdn = True
    size = 12 * MIB
    hub_file = hub.add_file("org/m", "m.safetensors", size=size)
    hub_file.faults.throttle_bps = 8 * MIB
    expired = []

    def expire_once(done, total):
        if done >= size // 3 and not expired:
            expired.append(done)
            hub.expire_cdn_urls()

    await fetch(make_transfer(per_file=2), tmp_path, hub_file, expire_once)
    resolves = [r for r in hub.requests if r.method == "GET" and r.path == hub_file.url_path]
    cdn = [r for r in hub.requests if r.method == "GET" and hub_file.sha256 in r.path]
    assert expired and len(resolves) >= 2 and len(cdn) > len(resolves)  # fresh URLs from the Hub, bytes from the CDN
    assert all("Authorization" not in r.headers for r in cdn)


async def test_the_bandwidth_cap_holds_for_all_connections_together(make_transfer, tmp_path, hub):
    size = 6 * MIB
    hub_file = hub.add_file("org/m", "m.safetensors", size=size)
    rate = 2 * MIB
    start = time.monotonic()
    connections = await fetch(make_transfer(rate=rate), tmp_path, hub_file)
    elapsed = time.monotonic() - start
    assert connections > 1
    assert size / elapsed <= rate * 1.1  # never faster than the cap (a slow machine only makes it slower)


async def test_the_connection_budget_is_never_exceeded(make_transfer, tmp_path, hub):
    files = [hub.add_file("org/m", f"m{i}.safetensors", size=6 * MIB) for i in range(3)]
    for hub_file in files:
        hub_file.faults.throttle_bps = 4 * MIB
    transfer = make_transfer(per_file=4, total=5)
    await asyncio.gather(*(fetch(transfer, tmp_path, f) for f in files))
    assert 1 < hub.peak_downloads <= 5
    assert transfer.connections.in_use() == 0


async def test_the_sidecar_records_the_ranges_on_disk(make_transfer, tmp_path, hub):
    size = 8 * MIB
    hub_file = hub.add_file("org/m", "m.safetensors", size=size)
    hub_file.faults.throttle_bps = 2 * MIB
    target = tmp_path / "models" / hub_file.path
    spec = {"repo": hub_file.repo_id, "repo_file": hub_file.path, "revision": "main"}
    several = asyncio.Event()

    def progress(done, total, connections):
        if connections > 1 and done >= size // 2:
            several.set()

    task = asyncio.create_task(make_transfer().fetch(target, spec, progress))
    await asyncio.wait_for(several.wait(), 60)
    task.cancel()  # as a pause does
    with pytest.raises(asyncio.CancelledError):
        await task
    part, sidecar = part_paths(target)
    ranges = json.loads(sidecar.read_text())["ranges"]
    assert ranges[0][0] == 0 and 0 < sum(end - start for start, end in ranges) < size
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))  # disjoint, in order
    data = part.read_bytes()
    for start, end in ranges:
        assert data[start:end] == hub_file.read(start, end)


async def test_pause_keeps_the_ranges_and_resume_fetches_only_the_rest(make_client, settings, hub):
    from downloads_support import Events, write_preset

    from dashboard.api.context import SERVICES

    size = 12 * MIB
    hub_file = hub.add_file("org/m", "m.safetensors", size=size)
    hub_file.faults.throttle_bps = 2 * MIB
    write_preset(settings, "SEG", [{"path": "loras/m.safetensors", "repo": "org/m", "file": "m.safetensors",
                                    "size": size}])
    client = await make_client(hf_endpoint=hub.url, connections_per_file=4)
    client.app[SERVICES].downloads.transfer.min_piece = MIB
    events = Events(client)
    download_id = (await (await client.post("/api/presets/SEG/install", json={})).json())["download_id"]
    await events.wait("download_progress", lambda d: d["connections"] > 1 and d["progress"] >= 25)
    listed = (await (await client.get("/api/downloads")).json())["downloads"][0]
    assert listed["connections"] > 1  # the list says how many connections the download uses
    await client.post(f"/api/downloads/{download_id}/pause")
    sidecar = part_paths(settings.models_dir / "loras" / "m.safetensors")[1]
    held = sum(end - start for start, end in json.loads(sidecar.read_text())["ranges"])
    assert held > 0
    sent_before = hub_file.bytes_sent  # still paced: an unpaced body runs ahead of a range that is split
    await client.post(f"/api/downloads/{download_id}/resume")
    assert (await events.wait("download_complete"))["status"] == "success"
    assert sha256_of(settings.models_dir / "loras" / "m.safetensors") == hub_file.sha256
    assert hub_file.bytes_sent - sent_before <= size - held + MIB  # only what the pause had not kept


def test_download_threads_run_at_a_lower_priority_while_yielding():
    import os
    import threading

    from dashboard.services.downloads.limits import YIELD_NICENESS, download_threads

    ready, done, ids = threading.Event(), threading.Event(), []
    download_threads.set_lowered(False)  # as a process with no dashboard yielding starts

    def worker():
        download_threads.register()
        ids.append(threading.get_native_id())
        ready.set()
        done.wait()

    thread = threading.Thread(target=worker)
    thread.start()
    ready.wait()
    base = os.getpriority(os.PRIO_PROCESS, ids[0])
    try:
        download_threads.set_lowered(True)
        assert os.getpriority(os.PRIO_PROCESS, ids[0]) == min(19, base + YIELD_NICENESS)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the loop's thread is untouched
        download_threads.set_lowered(False)
        if os.geteuid() == 0:  # raising a priority back needs the right to
            assert os.getpriority(os.PRIO_PROCESS, ids[0]) == base
    finally:
        download_threads.set_lowered(False)
        done.set()
        thread.join()
