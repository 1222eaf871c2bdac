"""Servers the tests run as real processes: a free port, and a process that is ready once a URL answers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(command: list[str], *, cwd: Path | str, env: dict[str, str], log_path: Path, ready_url: str,
            name: str, timeout: float = 60) -> Iterator[subprocess.Popen]:
    """Start `command`, wait until `ready_url` answers, yield the process; terminate it afterwards."""
    log = open(log_path, "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: {log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start in time") from None
                time.sleep(0.1)  # polling a starting process; not synchronising tested behaviour
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
