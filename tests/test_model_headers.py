"""Model file headers: the title, architecture and base model a user sees, read from real files."""

import json
import struct
import tracemalloc

import pytest

from dashboard.services.library.headers import MAX_KEYS, MAX_VALUE, read_metadata


def safetensors_bytes(metadata: dict | None, tensors: int = 2) -> bytes:
    """A real safetensors file: u64 header length, JSON header, then the tensors' bytes."""
    header: dict = {f"t{i}": {"dtype": "F32", "shape": [2], "data_offsets": [8 * i, 8 * i + 8]} for i in range(tensors)}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(8 * tensors)


def gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_value(kind: int, value) -> bytes:
    """A typed GGUF value: 4 u32, 6 f32, 7 bool, 8 string, 9 array as (item type, items)."""
    if kind == 8:
        return gguf_string(value)
    if kind == 9:
        item, items = value
        return struct.pack("<IQ", item, len(items)) + b"".join(gguf_value(item, v) for v in items)
    return struct.pack({4: "<I", 6: "<f", 7: "<?", 10: "<Q"}[kind], value)


def gguf_bytes(pairs: list[tuple[str, int, object]], version: int = 3) -> bytes:
    """A GGUF file with these key-value pairs and no tensors."""
    body = b"".join(gguf_string(key) + struct.pack("<I", kind) + gguf_value(kind, value) for key, kind, value in pairs)
    return b"GGUF" + struct.pack("<IQQ", version, 0, len(pairs)) + body


LLM_PAIRS = [
    ("general.architecture", 8, "llama"),
    ("general.name", 8, "Tiny Llama Chat"),
    ("general.basename", 8, "tiny-llama"),
    ("general.file_type", 4, 15),
    ("general.tags", 9, (8, ["chat", "small"])),
    ("llama.context_length", 4, 4096),
    ("tokenizer.ggml.tokens", 9, (8, [f"tok{i}" for i in range(500)])),
    ("general.languages", 9, (8, [f"l{i}" for i in range(65)])),
    ("general.rope_scale", 6, 0.5),
    ("general.quantized", 7, True),
]


def test_safetensors_modelspec_and_kohya_keys(tmp_path):
    path = tmp_path / "style.safetensors"
    path.write_bytes(safetensors_bytes({
        "modelspec.title": "Watercolour Style",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
        "ss_base_model_version": "sdxl_base_v1-0",
        "ss_sd_model_name": "sd_xl_base_1.0.safetensors",
        "ss_tag_frequency": json.dumps({"dataset": {f"tag{i}": i for i in range(5000)}}),
    }))

    found = read_metadata(path)

    assert found["format"] == "safetensors"
    assert found["title"] == "Watercolour Style"
    assert found["architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert found["base_model"] == "sdxl_base_v1-0"
    assert len(found["metadata"]["ss_tag_frequency"]) == MAX_VALUE
    assert found["metadata"]["ss_tag_frequency"].startswith('{"dataset": {"tag0": 0')
    assert found["metadata"]["ss_sd_model_name"] == "sd_xl_base_1.0.safetensors"


def test_safetensors_base_model_falls_back_to_the_training_model_then_modelspec(tmp_path):
    kohya, spec = tmp_path / "a.safetensors", tmp_path / "b.sft"
    kohya.write_bytes(safetensors_bytes({"ss_sd_model_name": "v1-5-pruned.ckpt", "modelspec.base_model": "x"}))
    spec.write_bytes(safetensors_bytes({"modelspec.base_model": "flux-1-dev"}))

    assert read_metadata(kohya)["base_model"] == "v1-5-pruned.ckpt"
    assert read_metadata(spec)["base_model"] == "flux-1-dev"
    assert read_metadata(spec)["title"] is None


def test_safetensors_without_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    path.write_bytes(safetensors_bytes(None))

    assert read_metadata(path) == {"format": "safetensors", "title": None, "architecture": None,
                                   "base_model": None, "metadata": {}}


def test_safetensors_keeps_at_most_max_keys(tmp_path):
    path = tmp_path / "many.safetensors"
    path.write_bytes(safetensors_bytes({f"key{i}": str(i) for i in range(MAX_KEYS + 50)}))

    assert len(read_metadata(path)["metadata"]) == MAX_KEYS


@pytest.mark.parametrize("content", [
    b"",
    b"\x10\x00",
    struct.pack("<Q", 100) + b'{"__metadata__": {}',  # header cut short
    struct.pack("<Q", 12) + b"not json at all",
    struct.pack("<Q", 2) + b"[]",
    struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc",
    b"PK\x03\x04" + bytes(200),  # a pickled checkpoint renamed .safetensors
    struct.pack("<Q", 2**62) + b"{}",
], ids=["empty", "short", "truncated", "garbage", "not an object", "not utf-8", "zip", "absurd length"])
def test_broken_safetensors_reads_as_none(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)

    assert read_metadata(path) is None


def test_a_header_over_the_limit_is_not_read(tmp_path):
    """A sparse 200 MB file whose first 8 bytes claim a 150 MB header: refused without reading it."""
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 150 * 1024 * 1024) + b"{")
        f.truncate(200 * 1024 * 1024)

    tracemalloc.start()
    try:
        assert read_metadata(path) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_gguf_general_keys(tmp_path):
    path = tmp_path / "tiny-llama.Q4_K_M.gguf"
    path.write_bytes(gguf_bytes(LLM_PAIRS))

    found = read_metadata(path)

    assert found["format"] == "gguf"
    assert found["title"] == "Tiny Llama Chat"
    assert found["architecture"] == "llama"
    assert found["base_model"] == "tiny-llama"
    assert found["metadata"] == {
        "general.architecture": "llama", "general.name": "Tiny Llama Chat", "general.basename": "tiny-llama",
        "general.file_type": 15, "general.tags": ["chat", "small"], "general.rope_scale": 0.5,
        "general.quantized": True,
    }


def test_gguf_base_model_entry_wins_over_basename(tmp_path):
    path = tmp_path / "finetune.gguf"
    path.write_bytes(gguf_bytes([
        ("general.basename", 8, "my-finetune"),
        ("general.base_model.count", 4, 1),
        ("general.base_model.0.name", 8, "Llama 3.1 8B"),
    ], version=2))

    found = read_metadata(path)

    assert found["base_model"] == "Llama 3.1 8B"
    assert found["title"] is None


def test_gguf_diffusion_model_with_architecture_only(tmp_path):
    path = tmp_path / "flux1-dev-Q8_0.gguf"
    path.write_bytes(gguf_bytes([("general.architecture", 8, "flux"), ("general.quantization_version", 10, 2)]))

    found = read_metadata(path)

    assert (found["architecture"], found["title"], found["base_model"]) == ("flux", None, None)
    assert found["metadata"] == {"general.architecture": "flux", "general.quantization_version": 2}


@pytest.mark.parametrize("cut", [3, 10, 30, 60, -1])
def test_truncated_gguf_reads_as_none(tmp_path, cut):
    path = tmp_path / "cut.gguf"
    path.write_bytes(gguf_bytes(LLM_PAIRS)[:cut])

    assert read_metadata(path) is None


@pytest.mark.parametrize("content", [
    b"GGUF" + struct.pack("<IQQ", 1, 0, 0),  # version 1 used 32-bit lengths
    b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_string("general.name") + struct.pack("<I", 99),
    b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_string("general.name") + struct.pack("<IQ", 8, 2**62),
    b"GGUF" + struct.pack("<IQQ", 3, 0, 2**40),
    safetensors_bytes({"modelspec.title": "x"}),
], ids=["version 1", "unknown type", "absurd string", "absurd count", "safetensors renamed"])
def test_malformed_gguf_reads_as_none(tmp_path, content):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)

    assert read_metadata(path) is None


@pytest.mark.parametrize("name", ["model.bin", "model.ckpt", "model.pt", "no-extension"])
def test_other_formats_read_as_none(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(safetensors_bytes({"modelspec.title": "looks like safetensors"}))

    assert read_metadata(path) is None


def test_missing_file_and_directory_read_as_none(tmp_path):
    (tmp_path / "folder.safetensors").mkdir()

    assert read_metadata(tmp_path / "gone.gguf") is None
    assert read_metadata(tmp_path / "folder.safetensors") is None
