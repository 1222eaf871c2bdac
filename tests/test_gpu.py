"""GPU readings: NVML against a stand-in of pynvml, AMD's against a fake sysfs tree and amdsmi stand-in.

The real NVML answers name, UUID, PCI bus id, utilization, memory, temperature, power and the
processes holding memory, and raises NVMLError_NotSupported for what a card lacks; a driver reload
makes calls fail until nvmlInit runs again. The stand-in does the same, so these tests run on
machines without a GPU. ComfyUI's own device comes from its `comfy.model_management` (a stand-in).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
from comfyui_standin import clean_env, install_model_management, serve_custom_node

from dashboard.comfy.inprocess import InProcessBackend
from dashboard.services import gpu as gpu_module
from dashboard.services import gpu_amd
from dashboard.services.gpu import GpuReader, mark_comfyui
from dashboard.services.gpu_amd import AmdReader

GIB = 1024**3


class NVMLError(Exception):
    pass


class FakeNvml(types.SimpleNamespace):
    NVML_TEMPERATURE_GPU = 0
    NVMLError = NVMLError

    def __init__(self, count=2, broken=()):
        super().__init__()
        self.count = count
        self.broken = set(broken)
        self.inits = 0
        self.driver_gone = False
        self.compute = {}  # handle -> [(pid, used bytes or None)]
        self.graphics = {}

    def _check(self, name):
        if self.driver_gone or name in self.broken:
            raise NVMLError(name)

    def nvmlInit(self):
        if self.driver_gone:
            raise NVMLError("Driver Not Loaded")
        self.inits += 1

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        self._check("count")
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index):
        self._check("handle")
        return index

    def nvmlDeviceGetName(self, handle):
        self._check("name")
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-0000000{handle}-aaaa"

    def nvmlDeviceGetPciInfo(self, handle):
        return types.SimpleNamespace(busId=f"00000000:0{handle}:00.0".encode())

    def nvmlDeviceGetUtilizationRates(self, handle):
        self._check("utilization")
        return types.SimpleNamespace(gpu=40 + 50 * handle, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle):
        self._check("memory")
        return types.SimpleNamespace(used=20 * 1024**3, total=80 * 1024**3, free=60 * 1024**3)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        self._check("temperature")
        return 51

    def nvmlDeviceGetPowerUsage(self, handle):
        return 123_456

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        self._check("compute")
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.compute.get(handle, [])]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        self._check("graphics")
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.graphics.get(handle, [])]


@pytest.fixture
def nvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setattr(gpu_module, "pynvml", fake)
    return fake


@pytest.fixture
def no_amd(tmp_path):
    """An AMD reader of an empty sysfs: only NVIDIA's GPUs are seen."""
    return AmdReader(tmp_path / "empty-sys", use_amdsmi=False)


def test_reads_every_gpu(nvml, no_amd):
    gpus = GpuReader(amd=no_amd).read()
    assert [g["index"] for g in gpus] == [0, 1]
    first = gpus[0]
    assert first["name"] == "NVIDIA H100 80GB HBM3" and first["pci_bus_id"] == "00000000:00:00.0"
    assert first["utilization_percent"] == 40 and first["memory_used_gb"] == 20 and first["memory_total_gb"] == 80
    assert first["memory_percent"] == 25 and first["temperature_c"] == 51
    assert first["power_w"] == 123.5 and first["power_limit_w"] == 700
    assert first["vendor"] == "nvidia" and first["source"] == "nvml" and first["comfyui"] is False
    assert first["processes"] == []  # NVML answered: nobody holds memory on it


def test_one_unsupported_reading_hides_nothing_else(nvml, no_amd):
    nvml.broken = {"temperature"}
    first = GpuReader(amd=no_amd).read()[0]
    assert first["temperature_c"] is None
    assert first["utilization_percent"] == 40 and first["memory_total_gb"] == 80


def test_cuda_visible_devices_marks_comfyuis_gpus(nvml):
    gpus = GpuReader("1").read()
    assert [g["visible_to_comfyui"] for g in gpus] == [False, True]
    assert [g["visible_to_comfyui"] for g in GpuReader("GPU-00000000").read()] == [True, False]


def test_initialises_once_and_again_after_a_driver_reload(nvml):
    reader = GpuReader()
    reader.read()
    reader.read()
    assert nvml.inits == 1
    nvml.driver_gone = True
    assert reader.read() == []
    nvml.driver_gone = False
    assert len(reader.read()) == 2
    assert nvml.inits == 2


def test_no_pynvml_or_no_driver_means_no_gpus(monkeypatch):
    monkeypatch.setattr(gpu_module, "pynvml", None)
    assert GpuReader().read() == []
    fake = FakeNvml()
    fake.driver_gone = True
    monkeypatch.setattr(gpu_module, "pynvml", fake)
    assert GpuReader().read() == []


async def test_status_reports_the_busiest_visible_gpu(make_client, nvml):
    client = await make_client(cuda_visible_devices="0")
    body = await (await client.get("/api/system/status")).json()
    assert body["resources"]["gpu_percent"] == 40  # GPU 1 is busier but not ComfyUI's
    assert len(body["gpus"]) == 2


# ---- who uses the GPU ----

def test_processes_holding_gpu_memory_are_listed_with_their_names(nvml, no_amd):
    me = os.getpid()
    nvml.compute = {0: [(me, 6 * GIB), (999_999_999, None)]}
    nvml.graphics = {0: [(me, 2 * GIB)]}  # the same process in both lists counts once
    first = mark_comfyui(GpuReader(amd=no_amd).read(), None, pid=me)[0]
    ours, other = first["processes"]
    assert ours == {"pid": me, "name": ours["name"], "used_memory_bytes": 6 * GIB, "comfyui": True}
    assert ours["name"]  # psutil names this very process
    assert other == {"pid": 999_999_999, "name": None, "used_memory_bytes": None, "comfyui": False}


def test_processes_outside_comfyui_are_not_comfyuis(nvml, no_amd):
    nvml.compute = {1: [(os.getpid(), GIB)]}
    assert [p["comfyui"] for p in mark_comfyui(GpuReader(amd=no_amd).read(), None)[1]["processes"]] == [False]


def test_processes_are_unknown_where_nvml_cannot_list_them(nvml, no_amd):
    nvml.broken = {"compute", "graphics"}
    assert GpuReader(amd=no_amd).read()[0]["processes"] is None
    nvml.broken = {"compute"}  # one list is enough
    nvml.graphics = {0: [(1, GIB)]}
    assert [p["pid"] for p in GpuReader(amd=no_amd).read()[0]["processes"]] == [1]


def test_nvml_that_failed_to_start_is_tried_again(nvml, no_amd):
    reader = GpuReader(amd=no_amd)
    nvml.driver_gone = True  # the first nvmlInit raises NVMLError
    assert reader.read() == []
    nvml.driver_gone = False
    assert [g["utilization_percent"] for g in reader.read()] == [40, 90]


# ---- AMD through sysfs ----

def card(root: Path, number: int, vendor: str = "0x1002", **files: str) -> Path:
    """A /sys/class/drm/cardN/device with these files; `hwmon_<name>` files go under hwmon/hwmon0."""
    device = root / "class" / "drm" / f"card{number}" / "device"
    (device / "hwmon" / "hwmon0").mkdir(parents=True)
    (device / "vendor").write_text(vendor + "\n")
    for name, text in files.items():
        path = device / "hwmon" / "hwmon0" / name.removeprefix("hwmon_") if name.startswith("hwmon_") else device / name
        path.write_text(text + "\n")
    return device


RX_7900 = {"product_name": "AMD Radeon RX 7900 XTX", "gpu_busy_percent": "37", "mem_info_vram_used": str(6 * GIB),
           "mem_info_vram_total": str(24 * GIB), "hwmon_temp1_input": "64000", "hwmon_power1_average": "212000000",
           "hwmon_power1_cap": "327000000"}


def test_amd_gpu_read_from_sysfs(tmp_path):
    card(tmp_path, 0, **RX_7900)
    (gpu,) = AmdReader(tmp_path, use_amdsmi=False).read()
    assert gpu["name"] == "AMD Radeon RX 7900 XTX" and gpu["vendor"] == "amd" and gpu["source"] == "sysfs"
    assert gpu["utilization_percent"] == 37 and gpu["temperature_c"] == 64
    assert gpu["memory_used_gb"] == 6 and gpu["memory_total_gb"] == 24 and gpu["memory_percent"] == 25
    assert gpu["power_w"] == 212 and gpu["power_limit_w"] == 327 and gpu["processes"] is None


def test_amd_readings_that_are_missing_or_garbage_are_unknown(tmp_path):
    card(tmp_path, 0, gpu_busy_percent="busy", mem_info_vram_used="", mem_info_vram_total=str(8 * GIB),
         hwmon_temp1_input="n/a")
    (gpu,) = AmdReader(tmp_path, use_amdsmi=False).read()
    assert gpu["name"] == "AMD GPU"  # no product_name on this card
    assert gpu["utilization_percent"] is None and gpu["temperature_c"] is None and gpu["power_w"] is None
    assert gpu["memory_used_gb"] is None and gpu["memory_percent"] is None and gpu["memory_total_gb"] == 8


def test_only_amd_cards_count_and_displays_are_not_cards(tmp_path):
    card(tmp_path, 1, **RX_7900)
    card(tmp_path, 0, vendor="0x8086", gpu_busy_percent="5")  # an Intel iGPU
    (tmp_path / "class" / "drm" / "card1-DP-1").mkdir()  # a connector of card1
    assert [g["name"] for g in AmdReader(tmp_path, use_amdsmi=False).read()] == ["AMD Radeon RX 7900 XTX"]
    assert AmdReader(tmp_path / "no-sysfs-here", use_amdsmi=False).read() == []


def test_nvidia_and_amd_gpus_are_numbered_in_one_list(nvml, tmp_path):
    card(tmp_path, 0, **RX_7900)
    gpus = GpuReader("0,1,0", amd=AmdReader(tmp_path, use_amdsmi=False)).read()
    assert [(g["index"], g["vendor"], g["source"]) for g in gpus] == [(0, "nvidia", "nvml"), (1, "nvidia", "nvml"),
                                                                        (2, "amd", "sysfs")]
    assert gpus[2]["visible_to_comfyui"] is True  # ROCm's GPU 0


# ---- AMD through amdsmi ----

class AmdSmiException(Exception):
    pass


class FakeAmdSmi(types.SimpleNamespace):
    AmdSmiException = AmdSmiException
    AmdSmiTemperatureType = types.SimpleNamespace(EDGE=0)
    AmdSmiTemperatureMetric = types.SimpleNamespace(CURRENT=0)

    def __init__(self):
        super().__init__()
        self.inits = 0
        self.failing = False

    def amdsmi_init(self):
        self.inits += 1

    def amdsmi_shut_down(self):
        pass

    def amdsmi_get_processor_handles(self):
        if self.failing:
            raise AmdSmiException("AMDSMI_STATUS_DRM_ERROR")
        return ["gpu0"]

    def amdsmi_get_gpu_asic_info(self, handle):
        return {"market_name": "AMD Instinct MI300X"}

    def amdsmi_get_gpu_device_bdf(self, handle):
        return "0000:0c:00.0"

    def amdsmi_get_gpu_activity(self, handle):
        return {"gfx_activity": 71, "umc_activity": 20, "mm_activity": "N/A"}

    def amdsmi_get_gpu_vram_usage(self, handle):
        return {"vram_total": 196_592, "vram_used": 49_148}  # MB

    def amdsmi_get_power_info(self, handle):
        return {"average_socket_power": "N/A", "current_socket_power": 540, "power_limit": 750}

    def amdsmi_get_temp_metric(self, handle, sensor, metric):
        raise AmdSmiException("AMDSMI_STATUS_NOT_SUPPORTED")


def test_amdsmi_readings_and_sysfs_while_it_fails(monkeypatch, tmp_path):
    fake = FakeAmdSmi()
    monkeypatch.setattr(gpu_amd, "amdsmi", fake)
    card(tmp_path, 0, **RX_7900)
    reader = AmdReader(tmp_path)
    (gpu,) = reader.read()
    assert gpu["source"] == "amdsmi" and gpu["name"] == "AMD Instinct MI300X" and gpu["pci_bus_id"] == "0000:0c:00.0"
    assert gpu["utilization_percent"] == 71 and gpu["memory_total_gb"] == 191.98 and gpu["memory_percent"] == 25
    assert gpu["power_w"] == 540 and gpu["power_limit_w"] == 750 and gpu["temperature_c"] is None
    fake.failing = True
    assert [g["source"] for g in reader.read()] == ["sysfs"]
    fake.failing = False
    assert [g["source"] for g in reader.read()] == ["amdsmi"]
    assert fake.inits == 2  # initialised again after it failed


# ---- the device ComfyUI computes on ----

def test_comfyuis_cuda_device_is_marked_by_its_uuid(nvml, no_amd):
    gpus = GpuReader(amd=no_amd).read()
    device = {"type": "cuda", "index": 0, "name": "NVIDIA H100", "vendor": "nvidia", "uuid": "00000001-AAAA",
              "total_bytes": 80 * GIB, "free_bytes": 10 * GIB}
    assert [g["comfyui"] for g in mark_comfyui(gpus, device)] == [False, True]


def test_comfyuis_cuda_device_is_marked_by_its_place_among_the_visible_gpus(nvml, no_amd):
    gpus = GpuReader("1", amd=no_amd).read()  # CUDA's device 0 is NVML's GPU 1
    device = {"type": "cuda", "index": 0, "name": "x", "vendor": "nvidia", "uuid": None, "total_bytes": 1,
              "free_bytes": 1}
    assert [g["comfyui"] for g in mark_comfyui(gpus, device)] == [False, True]


def test_a_device_no_reader_sees_is_comfyuis_own_entry():
    device = {"type": "mps", "index": None, "name": "mps", "vendor": "apple", "uuid": None,
              "total_bytes": 32 * GIB, "free_bytes": 24 * GIB}
    (gpu,) = mark_comfyui([], device)
    assert gpu["source"] == "comfyui" and gpu["comfyui"] is True and gpu["vendor"] == "apple"
    assert gpu["memory_used_gb"] == 8 and gpu["memory_total_gb"] == 32 and gpu["memory_percent"] == 25
    assert gpu["utilization_percent"] is None and gpu["processes"] is None


def test_comfyui_on_the_cpu_marks_no_gpu(nvml, no_amd):
    gpus = GpuReader(amd=no_amd).read()
    assert mark_comfyui(gpus, {"type": "cpu", "index": None, "total_bytes": 1, "free_bytes": 1}) == gpus
    assert not any(g["comfyui"] for g in gpus)


def test_in_process_backend_reads_comfyuis_memory_functions(monkeypatch):
    backend = InProcessBackend(prompt_server=None)
    monkeypatch.delitem(sys.modules, "comfy.model_management", raising=False)
    assert backend.device_memory() is None  # not inside ComfyUI
    install_model_management(monkeypatch, Device("xpu", 0), 16 * GIB, 12 * GIB)
    assert backend.device_memory() == {"type": "xpu", "index": 0, "name": "xpu:0", "vendor": "intel", "uuid": None,
                                       "total_bytes": 16 * GIB, "free_bytes": 12 * GIB}


async def test_status_inside_comfyui_shows_comfyuis_device(monkeypatch, tmp_path, aiohttp_client):
    clean_env(monkeypatch)
    install_model_management(monkeypatch, Device("mps"), 64 * GIB, 48 * GIB)
    _module, _server, client = await serve_custom_node(monkeypatch, tmp_path, aiohttp_client)
    body = await (await client.get("/dashboard/api/system/status")).json()
    ours = [g for g in body["gpus"] if g["comfyui"]]
    assert [(g["name"], g["source"], g["memory_used_gb"], g["memory_total_gb"]) for g in ours] == [
        ("mps", "comfyui", 16, 64)]


class Device:
    """What a torch.device looks like to the dashboard."""

    def __init__(self, type_: str, index: int | None = None) -> None:
        self.type, self.index = type_, index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"
