"""GPU readings through NVML, against a stand-in of pynvml that behaves like a data-centre card.

The real NVML answers name, UUID, PCI bus id, utilization, memory, temperature and power, and
raises NVMLError_NotSupported for what a card lacks; a driver reload makes calls fail until
nvmlInit runs again. The stand-in does the same, so these tests run on machines without a GPU.
"""

from __future__ import annotations

import types

import pytest

from dashboard.services import gpu as gpu_module
from dashboard.services.gpu import GpuReader


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


@pytest.fixture
def nvml(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setattr(gpu_module, "pynvml", fake)
    return fake


def test_reads_every_gpu(nvml):
    gpus = GpuReader().read()
    assert [g["index"] for g in gpus] == [0, 1]
    first = gpus[0]
    assert first["name"] == "NVIDIA H100 80GB HBM3" and first["pci_bus_id"] == "00000000:00:00.0"
    assert first["utilization_percent"] == 40 and first["memory_used_gb"] == 20 and first["memory_total_gb"] == 80
    assert first["memory_percent"] == 25 and first["temperature_c"] == 51
    assert first["power_w"] == 123.5 and first["power_limit_w"] == 700


def test_one_unsupported_reading_hides_nothing_else(nvml):
    nvml.broken = {"temperature"}
    first = GpuReader().read()[0]
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
