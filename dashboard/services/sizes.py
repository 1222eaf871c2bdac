"""Human-readable sizes, rates, durations and times, as the API and the WebSocket show them."""

from __future__ import annotations

from datetime import datetime, timezone

_UNITS = ((1024**4, "TB"), (1024**3, "GB"), (1024**2, "MB"), (1024, "KB"))


def human_size(n: int | float) -> str:
    """Bytes as "14.5GB", "820.0MB", "512B"."""
    for factor, unit in _UNITS:
        if n >= factor:
            return f"{n / factor:.1f}{unit}"
    return f"{int(n)}B"


def gb(n: int | float) -> float:
    """Bytes as GiB with two decimals."""
    return round(n / 1024**3, 2)


def human_rate(bytes_per_second: float) -> str:
    """A speed as "125 MB/s"."""
    return f"{bytes_per_second / 1e6:.0f} MB/s" if bytes_per_second >= 1e6 else f"{bytes_per_second / 1e3:.0f} KB/s"


def human_duration(seconds: int | None) -> str | None:
    """A duration as "2m 30s", "1h 5m", "45s"."""
    if seconds is None:
        return None
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def iso_utc(timestamp: float) -> str:
    """A Unix time as "2026-02-15T10:30:00Z"."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
