"""The system history: the last hour of samples in bounded memory, and GET /api/system/history."""

from __future__ import annotations

import time

from dashboard.api.context import SERVICES
from dashboard.services.system_history import MAX_SAMPLES, SystemHistory


def sample(timestamp: float, cpu: float = 10.0) -> dict:
    return {"timestamp": timestamp, "cpu_percent": cpu, "memory_percent": 50.0, "memory_used_gb": 8.0,
            "gpu_percent": None, "disk_used_gb": 100.0, "disk_total_gb": 500.0, "gpus": []}


def test_an_hour_at_the_interval_and_never_more_than_the_cap():
    assert SystemHistory(2.0).maxlen == 1800
    assert SystemHistory(0.2).maxlen == MAX_SAMPLES == 3600  # an hour would be 18,000: capped


def test_many_samples_keep_only_the_newest():
    history = SystemHistory(2.0)
    for n in range(5000):
        history.add(sample(1000.0 + 2 * n, cpu=n))
    assert len(history) == 1800
    kept = history.samples_between(0, float("inf"))
    assert kept[0]["cpu_percent"] == 5000 - 1800 and kept[-1]["cpu_percent"] == 4999


def test_samples_between_answers_the_window_oldest_first():
    history = SystemHistory(1.0)
    for n in range(100):
        history.add(sample(1000.0 + n, cpu=n))
    assert [s["cpu_percent"] for s in history.samples_between(1010, 1013)] == [10, 11, 12, 13]
    assert [s["cpu_percent"] for s in history.samples_between(1010.5, 1011.5)] == [11]
    assert history.samples_between(2000, 3000) == [] and history.samples_between(1013, 1010) == []
    assert [s["cpu_percent"] for s in history.last(3, now=1099)] == [96, 97, 98, 99]


def test_a_sample_from_a_clock_that_went_back_is_dropped():
    history = SystemHistory(1.0)
    history.add(sample(1000.0, cpu=1))
    history.add(sample(990.0, cpu=2))
    assert [s["cpu_percent"] for s in history.samples_between(0, 2000)] == [1]


async def test_the_api_answers_the_interval_and_the_samples_of_the_last_minutes(make_client):
    client = await make_client()
    body = await (await client.get("/api/system/history")).json()
    assert body["interval"] == 0.2
    assert body["samples"], "the first sample is taken when the dashboard starts"
    first = body["samples"][0]
    assert {"timestamp", "cpu_percent", "memory_percent", "memory_used_gb", "gpu_percent", "disk_used_gb",
            "disk_total_gb", "gpus"} <= first.keys()
    status = await (await client.get("/api/system/status")).json()
    latest = (await (await client.get("/api/system/history")).json())["samples"][-1]
    assert latest["timestamp"] >= status["sampled_at"] - 1


async def test_minutes_leaves_out_older_samples(make_client):
    client = await make_client()
    history = client.app[SERVICES].system.history
    now = time.time()
    old = SystemHistory(history.interval)  # what the monitor took, with a sample of 30 minutes ago first
    old.add(sample(now - 30 * 60, cpu=99.0))
    for kept in history.samples_between(0, float("inf")):
        old.add(kept)
    client.app[SERVICES].system.history = old
    hour = (await (await client.get("/api/system/history")).json())["samples"]
    ten_minutes = (await (await client.get("/api/system/history?minutes=10")).json())["samples"]
    assert hour[0]["cpu_percent"] == 99.0
    assert ten_minutes[:len(hour) - 1] == hour[1:]  # the same samples (and those taken since), less the old one


async def test_minutes_out_of_range_is_invalid_request(make_client):
    client = await make_client()
    for bad in ("0", "61", "ten"):
        response = await client.get(f"/api/system/history?minutes={bad}")
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "INVALID_REQUEST"
