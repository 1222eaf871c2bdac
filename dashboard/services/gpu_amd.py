"""AMD GPU readings: through `amdsmi` (ROCm's library) when it imports, else from Linux sysfs.

Blocking calls: run `AmdReader.read()` in a thread. Sysfs is `<root>/class/drm/card*/device/` of the
amdgpu driver: `vendor` (0x1002), `gpu_busy_percent`, `mem_info_vram_used` and `mem_info_vram_total`
(bytes), `hwmon/hwmon*/temp1_input` (millidegrees) and `power1_average` / `power1_cap` (microwatts),
`product_name` when the card has one. Every reading is optional: a missing file or a value that is not
a number leaves that field None. amdsmi is initialised once and again after it failed; while it
fails, sysfs answers.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .sizes import gb

log = logging.getLogger("dashboard.gpu")

try:  # pragma: no cover - depends on the machine
    import amdsmi
except Exception:  # pragma: no cover - ImportError, or a ROCm install that fails to load
    amdsmi = None

AMD_VENDOR_ID = "0x1002"
_CARD = re.compile(r"card(\d+)")
_PCI_ADDRESS = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-9a-fA-F]")


class AmdReader:
    """Reads every AMD GPU; `sysfs_root` is `/sys` (tests give a fake tree); `use_amdsmi=False` skips amdsmi."""

    def __init__(self, sysfs_root: Path | str = "/sys", use_amdsmi: bool = True) -> None:
        self._root = Path(sysfs_root)
        self._use_amdsmi = use_amdsmi
        self._initialised = False

    def read(self) -> list[dict[str, Any]]:
        """One reading per AMD GPU, in the shape of `GpuReader`'s entries less index and visibility."""
        if self._use_amdsmi and amdsmi is not None and self._init():
            try:
                return [_amdsmi_reading(handle) for handle in amdsmi.amdsmi_get_processor_handles()]
            except Exception as exc:  # amdsmi raises AmdSmiException, or worse after a driver reload
                log.debug("amdsmi failed, reading sysfs until it answers again: %s", exc)
                self._reset()
        return self._sysfs()

    def close(self) -> None:
        """Release amdsmi."""
        if self._initialised:
            self._reset()

    def _init(self) -> bool:
        if self._initialised:
            return True
        try:
            amdsmi.amdsmi_init()
        except Exception as exc:
            log.debug("No amdsmi readings: %s", exc)
            return False
        self._initialised = True
        return True

    def _reset(self) -> None:
        self._initialised = False
        with contextlib.suppress(Exception):
            amdsmi.amdsmi_shut_down()

    def _sysfs(self) -> list[dict[str, Any]]:
        drm = self._root / "class" / "drm"
        try:
            cards = sorted((int(m.group(1)), p) for p in drm.iterdir() if (m := _CARD.fullmatch(p.name)))
        except OSError:
            return []
        return [_sysfs_reading(path / "device") for _number, path in cards
                if (_read_text(path / "device" / "vendor") or "").lower() == AMD_VENDOR_ID]


def _sysfs_reading(device: Path) -> dict[str, Any]:
    used = _read_int(device / "mem_info_vram_used")
    total = _read_int(device / "mem_info_vram_total")
    hwmon = _hwmon(device)
    temperature = _read_int(hwmon / "temp1_input") if hwmon else None
    power = _read_int(hwmon / "power1_average") if hwmon else None
    if power is None and hwmon:
        power = _read_int(hwmon / "power1_input")
    power_cap = _read_int(hwmon / "power1_cap") if hwmon else None
    address = device.resolve().name
    return _entry(
        name=_read_text(device / "product_name") or "AMD GPU", uuid=_read_text(device / "unique_id"),
        pci_bus_id=address if _PCI_ADDRESS.fullmatch(address) else None,
        utilization=_read_int(device / "gpu_busy_percent"), used=used, total=total,
        temperature=round(temperature / 1000) if temperature is not None else None,
        power_w=power / 1e6 if power is not None else None, power_limit_w=power_cap / 1e6 if power_cap else None,
        source="sysfs")


def _amdsmi_reading(handle: Any) -> dict[str, Any]:
    def value(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception:  # amdsmi raises AmdSmiException for what a card lacks
            return None

    asic = value(lambda: amdsmi.amdsmi_get_gpu_asic_info(handle)) or {}
    activity = value(lambda: amdsmi.amdsmi_get_gpu_activity(handle)) or {}
    vram = value(lambda: amdsmi.amdsmi_get_gpu_vram_usage(handle)) or {}  # MB
    power = value(lambda: amdsmi.amdsmi_get_power_info(handle)) or {}
    temperature = value(lambda: amdsmi.amdsmi_get_temp_metric(
        handle, amdsmi.AmdSmiTemperatureType.EDGE, amdsmi.AmdSmiTemperatureMetric.CURRENT))
    used, total = _number(vram.get("vram_used")), _number(vram.get("vram_total"))
    socket_power = _number(power.get("average_socket_power"))
    return _entry(
        name=_str(asic.get("market_name")) or "AMD GPU", uuid=None,
        pci_bus_id=_str(value(lambda: amdsmi.amdsmi_get_gpu_device_bdf(handle))),
        utilization=_number(activity.get("gfx_activity")),
        used=used * 1024**2 if used is not None else None, total=total * 1024**2 if total is not None else None,
        temperature=_number(temperature),
        power_w=socket_power if socket_power is not None else _number(power.get("current_socket_power")),
        power_limit_w=_number(power.get("power_limit")), source="amdsmi")


def _entry(*, name: str, uuid: str | None, pci_bus_id: str | None, utilization: float | None, used: float | None,
           total: float | None, temperature: float | None, power_w: float | None, power_limit_w: float | None,
           source: str) -> dict[str, Any]:
    return {
        "name": name,
        "uuid": uuid,
        "pci_bus_id": pci_bus_id,
        "utilization_percent": utilization,
        "memory_used_gb": gb(used) if used is not None else None,
        "memory_total_gb": gb(total) if total is not None else None,
        "memory_percent": round(100 * used / total, 1) if used is not None and total else None,
        "temperature_c": temperature,
        "power_w": round(power_w, 1) if power_w is not None else None,
        "power_limit_w": round(power_limit_w, 1) if power_limit_w is not None else None,
        "vendor": "amd",
        "source": source,
        "processes": None,
    }


def _hwmon(device: Path) -> Path | None:
    try:
        return min((device / "hwmon").glob("hwmon*"), default=None)
    except OSError:
        return None


def _read_text(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace").strip()
    except (OSError, ValueError):
        return None
    return text or None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    """A reading as a number; amdsmi answers "N/A" (or a dict of value and unit) for what it lacks."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value != "N/A" else None
