"""The metadata a model file carries in its header, read without loading a byte of its weights.

Two formats carry it: safetensors (`.safetensors`, `.sft`: a little-endian u64 length, then that
many bytes of JSON whose `__metadata__` maps strings to strings) and GGUF (`.gguf`: typed key-value
pairs before the tensor infos). Any other file, and any file that is not what its extension says,
is truncated or malformed, reads as None, never as an exception.

Every value is cut to `MAX_VALUE` characters (kohya LoRAs carry `ss_tag_frequency` and
`ss_dataset_dirs` as JSON strings of megabytes) and at most `MAX_KEYS` keys are kept.

GGUF is read by the small bounded reader below rather than by `gguf.GGUFReader` (llama.cpp's
package): that one pulls numpy, requests, tqdm and PyYAML in (~80 MB), and it decodes every field
and every tensor info into numpy objects, the tokenizer vocabulary included. On a 1 GB file with
1,000 tensors and a 256,000-token vocabulary it took 4.7 s and 377 MB of memory (0.06 s and 36 MB
without the vocabulary, plus 0.12 s to import numpy); this reader, which seeks past every value it
does not keep, took 0.22 s and 12 MB (0.0001 s without the vocabulary). Only `general.*` keys are kept.

Blocking: callers run `read_metadata` in a thread.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

#: A safetensors header longer than this is refused (the largest real ones are a few MB).
MAX_HEADER = 100 * 1024 * 1024
MAX_VALUE = 2000
MAX_KEYS = 200
#: GGUF arrays longer than this are left out of the metadata (tokenizer vocabularies and the like).
MAX_ARRAY = 64
#: GGUF limits past which a file is taken as malformed: no real file comes near them.
_MAX_KV = 65536
_MAX_KEY = 1024
_MAX_DEPTH = 8

SAFETENSORS = frozenset({".safetensors", ".sft"})
GGUF = frozenset({".gguf"})
#: GGUF value type -> struct format of its fixed-size scalar (8 string and 9 array are read apart).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Malformed(ValueError):
    """The file ends early or holds what its format does not allow."""


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The header metadata of the model file at `path`, or None where it has none that can be read.

    Returns `{"format": "safetensors" | "gguf", "title", "architecture", "base_model": str | None,
    "metadata": {key: value}}`. Safetensors: title `modelspec.title`, architecture
    `modelspec.architecture`, base_model the first of `ss_base_model_version`, `ss_sd_model_name`
    (kohya's training keys) and `modelspec.base_model`; metadata is `__metadata__` (values strings).
    GGUF: title `general.name`, architecture `general.architecture`, base_model
    `general.base_model.0.name`, else `general.basename`; metadata is the `general.*` keys whose
    values are scalars or arrays of at most `MAX_ARRAY` scalars or strings.
    Never raises: a missing, unreadable, truncated or malformed file is None.
    """
    suffix = path.suffix.lower()
    reader = _safetensors if suffix in SAFETENSORS else _gguf if suffix in GGUF else None
    if reader is None:
        return None
    try:
        with open(path, "rb") as f:
            return reader(f, os.fstat(f.fileno()).st_size)
    except (OSError, ValueError, RecursionError, struct.error):
        return None


def _safetensors(f: BinaryIO, size: int) -> dict[str, Any] | None:
    """Fields from a safetensors header: `modelspec.*` keys, else kohya's training keys."""
    length = int.from_bytes(_read(f, 8), "little")
    if length < 2 or length > MAX_HEADER or 8 + length > size:
        return None
    header = json.loads(_read(f, length))
    if not isinstance(header, dict):
        return None
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        return None
    metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return _result("safetensors", metadata, title=_first(metadata, "modelspec.title"),
                   architecture=_first(metadata, "modelspec.architecture"),
                   base_model=_first(metadata, "ss_base_model_version", "ss_sd_model_name", "modelspec.base_model"))


def _gguf(f: BinaryIO, size: int) -> dict[str, Any] | None:
    """Fields from a GGUF v2/v3 header's `general.*` keys; every other value is skipped unread."""
    if _read(f, 4) != b"GGUF":
        return None
    version, _tensors, count = struct.unpack("<IQQ", _read(f, 20))
    if version not in (2, 3) or count > _MAX_KV:
        return None
    metadata: dict[str, Any] = {}
    for _ in range(count):
        key = _string(f, size, _MAX_KEY)
        (kind,) = struct.unpack("<I", _read(f, 4))
        keep = key.startswith("general.")
        value = _value(f, size, kind, keep=keep)
        if keep and value is not None:
            metadata[key] = value
    return _result("gguf", metadata, title=_first(metadata, "general.name"),
                   architecture=_first(metadata, "general.architecture"),
                   base_model=_first(metadata, "general.base_model.0.name", "general.basename"))


def _value(f: BinaryIO, size: int, kind: int, *, keep: bool, depth: int = 0) -> Any:
    """The GGUF value of type `kind` at the file's position, or None where it is skipped."""
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        if not keep:
            return _skip(f, size, struct.calcsize(fmt))
        return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]
    if kind == _STRING:
        return _string(f, size, MAX_VALUE, skip=not keep)
    if kind != _ARRAY or depth >= _MAX_DEPTH:
        raise _Malformed(f"value type {kind}")
    item, count = struct.unpack("<IQ", _read(f, 12))
    keep = keep and count <= MAX_ARRAY and item != _ARRAY
    if item in _SCALARS and not keep:
        return _skip(f, size, count * struct.calcsize(_SCALARS[item]))
    if count > size:  # every item takes at least a byte
        raise _Malformed("array longer than the file")
    if keep:
        return [_value(f, size, item, keep=True, depth=depth + 1) for _ in range(count)]
    for _ in range(count):
        _value(f, size, item, keep=False, depth=depth + 1)
    return None


def _string(f: BinaryIO, size: int, limit: int, *, skip: bool = False) -> str | None:
    """A GGUF string (u64 length, UTF-8), cut to `limit` characters; None (and skipped) where `skip`."""
    (length,) = struct.unpack("<Q", _read(f, 8))
    if skip:
        return _skip(f, size, length)
    head = _read(f, min(length, 4 * limit))  # a UTF-8 character takes at most 4 bytes
    _skip(f, size, length - len(head))
    return head.decode("utf-8", errors="replace")[:limit]


def _skip(f: BinaryIO, size: int, length: int) -> None:
    """Move past `length` bytes, which must all be in the file."""
    end = f.tell() + length
    if end > size:
        raise _Malformed("ends early")
    f.seek(end)


def _read(f: BinaryIO, length: int) -> bytes:
    """Exactly `length` bytes from the file's position."""
    data = f.read(length)
    if len(data) != length:
        raise _Malformed("ends early")
    return data


def _first(metadata: dict[str, Any], *keys: str) -> str | None:
    """The first of `keys` that holds a non-empty string."""
    return next((v for k in keys if isinstance(v := metadata.get(k), str) and v), None)


def _result(fmt: str, metadata: dict[str, Any], **fields: str | None) -> dict[str, Any]:
    """What `read_metadata` returns: the first `MAX_KEYS` keys, every string cut to `MAX_VALUE` characters."""
    kept = {k: v[:MAX_VALUE] if isinstance(v, str) else v for k, v in list(metadata.items())[:MAX_KEYS]}
    return {"format": fmt, **{k: v[:MAX_VALUE] if v else v for k, v in fields.items()}, "metadata": kept}
