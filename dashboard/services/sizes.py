"""Human-readable sizes, rates and durations, as the API and the WebSocket show them."""

from __future__ import annotations

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
