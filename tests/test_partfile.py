"""The `.part` writer: exact bytes and hashes in both write modes, resumes, pauses, failed writes."""

import errno
import hashlib
import random
import resource
import signal

import pytest

from dashboard.services.downloads import partfile
from dashboard.services.downloads.partfile import ALIGN, BUFFER, PartFile

DATA = random.Random(7).randbytes(2 * BUFFER + 3 * ALIGN + 123)


@pytest.fixture(params=["direct", "page cache"])
def mode(request, monkeypatch):
    if request.param == "page cache":
        monkeypatch.setattr(partfile, "_DIRECT", 0)
    return request.param


def pieces(data: bytes, seed: int = 1):
    """`data` cut at random places, as a network hands it over."""
    rng, start = random.Random(seed), 0
    while start < len(data):
        size = rng.randint(1, 300_000)
        yield data[start:start + size]
        start += size


def test_appended_bytes_and_digests_are_exact(tmp_path, mode):
    path = tmp_path / "model.safetensors.part"
    part = PartFile(path, 0, [hashlib.sha256(), hashlib.sha1()])
    for piece in pieces(DATA):
        part.append(piece)
    digests = part.finish()
    part.close()
    assert path.read_bytes() == DATA
    assert digests == [hashlib.sha256(DATA).hexdigest(), hashlib.sha1(DATA).hexdigest()]


@pytest.mark.parametrize("offset", [ALIGN * 3 + 1000, BUFFER + 5, ALIGN])
def test_resuming_at_any_offset_keeps_the_prefix_and_hashes_it(tmp_path, mode, offset):
    path = tmp_path / "model.safetensors.part"
    path.write_bytes(DATA[:offset])
    part = PartFile(path, offset, [hashlib.sha256()])
    for piece in pieces(DATA[offset:]):
        part.append(piece)
    assert part.finish() == [hashlib.sha256(DATA).hexdigest()]
    part.close()
    assert path.read_bytes() == DATA


def test_a_longer_part_file_is_cut_back_to_the_offset(tmp_path, mode):
    path = tmp_path / "model.safetensors.part"
    path.write_bytes(DATA[:5000] + b"garbage after the offset")
    part = PartFile(path, 5000, [hashlib.sha256()])
    part.append(DATA[5000:])
    part.finish()
    part.close()
    assert path.read_bytes() == DATA


def test_closing_without_finishing_keeps_every_byte_appended(tmp_path, mode):
    path = tmp_path / "model.safetensors.part"
    part = PartFile(path, 0, [hashlib.sha256()])
    got = DATA[:BUFFER + 777]
    for piece in pieces(got):
        part.append(piece)
    part.close()  # a pause: the next try resumes from here
    assert path.read_bytes() == got


def test_a_failed_write_is_raised_and_the_file_stays_a_prefix(tmp_path, mode):
    path = tmp_path / "model.safetensors.part"
    limit = BUFFER + ALIGN  # the second buffer cannot be written whole
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    previous_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, previous_limit[1]))
    try:
        part = PartFile(path, 0, [hashlib.sha256()])
        with pytest.raises(OSError) as failure:
            for piece in pieces(DATA):
                part.append(piece)
            part.finish()
        part.close()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous_limit)
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert failure.value.errno == errno.EFBIG
    written = path.read_bytes()
    assert len(written) <= limit and DATA.startswith(written)
