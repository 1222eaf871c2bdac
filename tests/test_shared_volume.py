"""Two dashboard processes on one workspace: one download, never a wrong file at a final path."""

from __future__ import annotations

import contextlib
import signal
import threading

from dashboard_process import Server, big_preset, finished, presets_command, start_presets_command
from downloads_support import sha256_of, write_workspace_preset
from hub import FakeHub, running_hub
from support import fetch_json, wait_until

MB = 1024 * 1024
SIZE = 48 * MB
NO_LIMIT = {"DASHBOARD_RATE_LIMIT": "0"}  # the test polls often


class FinalFileWatch:
    """Polls the final path in a thread: every size it ever saw there."""

    def __init__(self, path) -> None:
        self.path, self.sizes, self._stop = path, set(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            with contextlib.suppress(FileNotFoundError):
                self.sizes.add(self.path.stat().st_size)

    def stop(self) -> set[int]:
        self._stop.set()
        self._thread.join()
        return self.sizes


def lookups(hub: FakeHub, name: str) -> int:
    """How often a client has looked the file up (the HEAD that resolves it)."""
    return sum(1 for r in list(hub.requests) if r.method == "HEAD" and r.path.endswith("/" + name))


def status(server: Server) -> str:
    return fetch_json(server.url + "/api/presets/BIG/status")["status"]


def test_two_servers_installing_the_same_preset_fetch_it_once(tmp_path):
    hub = FakeHub()
    hub_file = hub.add_file("org/big", "big.safetensors", size=SIZE)
    hub_file.faults.throttle_bps = 8 * MB
    workspace = tmp_path / "workspace"
    big_preset(workspace, SIZE)
    final = workspace / "models" / "checkpoints" / "big.safetensors"
    watch = FinalFileWatch(final)
    with running_hub(hub) as hub_url:
        first, second = Server(workspace, hub_url, NO_LIMIT), Server(workspace, hub_url, NO_LIMIT)
        try:
            for server in (first, second):
                fetch_json(server.url + "/api/presets/BIG/install", "POST", {})
            for server in (first, second):
                wait_until(lambda s=server: status(s) == "installed", timeout=120)
        finally:
            first.stop()
            second.stop()
    assert watch.stop() == {SIZE}  # nobody ever saw a partial file at the final path
    assert sha256_of(final) == hub_file.sha256
    assert hub_file.bytes_sent <= SIZE * 1.05  # fetched once (what a stolen range had in flight aside)


def test_a_waiting_server_finishes_from_the_part_when_the_other_is_killed(tmp_path):
    hub = FakeHub()
    size = 128 * MB  # what a kill loses (buffers, unrecorded ranges) stays small against it
    hub_file = hub.add_file("org/big", "big.safetensors", size=size)
    hub_file.faults.throttle_bps = 8 * MB
    workspace = tmp_path / "workspace"
    big_preset(workspace, size)
    final = workspace / "models" / "checkpoints" / "big.safetensors"
    with running_hub(hub) as hub_url:
        first = Server(workspace, hub_url, NO_LIMIT)
        second = Server(workspace, hub_url, NO_LIMIT)
        try:
            fetch_json(first.url + "/api/presets/BIG/install", "POST", {})
            wait_until(lambda: first.download()["bytes_done"] >= size // 3)
            fetch_json(second.url + "/api/presets/BIG/install", "POST", {})  # waits for the first one's .part
            wait_until(lambda: second.download()["bytes_done"] > 0)
            first.stop(signal.SIGKILL)
            hub_file.faults.throttle_bps = None
            wait_until(lambda: status(second) == "installed", timeout=120)
        finally:
            second.stop()
    assert sha256_of(final) == hub_file.sha256
    assert hub_file.bytes_sent <= size * 1.25  # the second went on from what the first had on disk


def test_the_cli_beside_a_server_waits_for_its_download_and_the_server_sees_what_the_cli_installs(tmp_path):
    hub = FakeHub()
    hub_file = hub.add_file("org/big", "big.safetensors", size=SIZE)
    hub_file.faults.throttle_bps = 8 * MB
    hub_file.faults.hold_at = SIZE // 2  # the server's download waits half-way until the command runs
    other = hub.add_file("org/other", "other.safetensors", size=2 * MB)
    workspace = tmp_path / "workspace"
    big_preset(workspace, SIZE)
    write_workspace_preset(workspace, "OTHER", [
        {"path": "loras/other.safetensors", "repo": "org/other", "file": "other.safetensors", "size": 2 * MB}])
    with running_hub(hub) as hub_url:
        server = Server(workspace, hub_url, NO_LIMIT)
        try:
            fetch_json(server.url + "/api/presets/BIG/install", "POST", {})
            wait_until(lambda: hub_file.bytes_sent >= SIZE // 2)  # the server holds the .part, half-way
            looked_up = lookups(hub, "big.safetensors")
            command = start_presets_command(workspace, hub_url, "install", "BIG")
            wait_until(lambda: lookups(hub, "big.safetensors") > looked_up)  # it found BIG not installed
            hub_file.faults.release()
            cli = finished(command)  # it waited for the server's .part
            assert cli.returncode == 0, cli.stderr
            assert "BIG: installed" in cli.stderr
            assert status(server) == "installed"
            assert presets_command(workspace, hub_url, "install", "OTHER").returncode == 0
            wait_until(lambda: fetch_json(server.url + "/api/presets/OTHER/status")["status"] == "installed")
        finally:
            server.stop()
    assert sha256_of(workspace / "models" / "checkpoints" / "big.safetensors") == hub_file.sha256
    assert hub_file.bytes_sent <= SIZE * 1.05 and other.bytes_sent == other.size  # one download each
