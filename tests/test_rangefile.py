"""Ranges and the many-offset `.part` writer: exact bytes and hashes whatever order ranges arrive in."""

import hashlib
import itertools
import random
import threading

import pytest

from dashboard.services.downloads import rangefile
from dashboard.services.downloads.partfile import ALIGN
from dashboard.services.downloads.rangefile import STREAM_BUFFER, RangeFile
from dashboard.services.downloads.ranges import Extents, RangePlan

MIB = 1024 * 1024


@pytest.fixture(params=["direct", "page cache"])
def mode(request, monkeypatch):
    if request.param == "page cache":
        monkeypatch.setattr(rangefile, "_DIRECT", 0)
    return request.param


def pieces(data: bytes, seed: int):
    rng, start = random.Random(seed), 0
    while start < len(data):
        size = rng.randint(1, 300_000)
        yield data[start:start + size]
        start += size


def write_ranges(part: RangeFile, data: bytes, ranges, seed=1):
    """Each range through its own stream, the streams interleaved from several threads."""
    def run(index, start, end):
        stream = part.stream(start)
        for piece in pieces(data[start:end], seed + index):
            stream.append(piece)
        stream.close()

    threads = [threading.Thread(target=run, args=(i, s, e)) for i, (s, e) in enumerate(ranges)]
    for thread in reversed(threads):
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("size", [3 * STREAM_BUFFER + 1, 7_340_033, 4 * MIB])  # odd, prime, round
def test_ranges_written_out_of_order_hash_like_the_whole_file(tmp_path, mode, size):
    data = random.Random(size).randbytes(size)
    path = tmp_path / "model.safetensors.part"
    part = RangeFile(path, size, Extents(), [hashlib.sha256(), hashlib.sha1()])
    cuts = sorted({0, size, *(c - c % ALIGN for c in random.Random(3).sample(range(size), 3))})
    write_ranges(part, data, list(itertools.pairwise(cuts)))
    digests = part.finish()
    part.close()
    assert path.read_bytes() == data
    assert digests == [hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest()]


def test_held_ranges_are_kept_and_hashed_again(tmp_path, mode):
    size = 5 * MIB + 77
    data = random.Random(5).randbytes(size)
    path = tmp_path / "model.safetensors.part"
    path.write_bytes(data[:MIB + 10] + bytes(MIB - 10) + data[2 * MIB:3 * MIB])  # a hole in the middle
    held = Extents([(0, MIB + 10), (2 * MIB, 3 * MIB)])
    part = RangeFile(path, size, held, [hashlib.sha256()])
    write_ranges(part, data, [(s - s % ALIGN, e) for s, e in held.gaps(size)])
    assert part.finish() == [hashlib.sha256(data).hexdigest()]
    assert part.held() == [[0, size]]
    part.close()
    assert path.read_bytes() == data


def test_extents_merge_and_report_gaps():
    extents = Extents([(10, 20), (30, 40)])
    extents.add(20, 30)
    assert extents.as_list() == [[10, 40]] and extents.prefix() == 0
    extents.add(0, 5)
    assert extents.gaps(50) == [(5, 10), (40, 50)] and extents.prefix() == 5 and extents.total() == 35


def claim_in_order(plan: RangePlan, connections: int) -> tuple[list, object]:
    """Claim until the free ranges are gone: (the pieces, in order; the first claim after them)."""
    pieces = []
    while (piece := plan.claim(connections)) is not None and (not pieces or piece.start == pieces[-1].end):
        pieces.append(piece)
    return pieces, piece


def test_a_plan_hands_out_pieces_in_order_then_steals_half_of_the_largest():
    plan = RangePlan(64 * MIB, min_piece=8 * MIB)
    pieces, stolen = claim_in_order(plan, connections=1)
    assert pieces[0].start == 0 and pieces[-1].end == 64 * MIB
    victim = next(p for p in pieces if p.end == stolen.start)
    assert victim.end - victim.start == stolen.end - stolen.start  # the thief took half ...
    before = stolen.end - victim.start
    assert all(before >= p.end - p.start for p in pieces)  # ... of the largest
    for piece in (*pieces, stolen):
        piece.pos = piece.end - MIB
    assert plan.claim() is None  # nothing left is worth splitting
    plan.release(stolen)
    plan.release(stolen)  # twice changes nothing
    resumed = plan.claim()
    assert (resumed.start, resumed.end) == (stolen.end - MIB, stolen.end)
    assert plan.claim() is None and not plan.finished
    assert plan.remaining() == MIB * (len(pieces) + 1)


def test_pieces_grow_from_the_minimum_then_shrink_as_the_end_nears():
    plan = RangePlan(256 * MIB, min_piece=4 * MIB)
    sizes = []
    while (piece := plan.claim(connections=8)) is not None:
        sizes.append(piece.end - piece.start)
        piece.pos = piece.end
        plan.release(piece)
    assert sum(sizes) == 256 * MIB and plan.finished
    largest = sizes.index(max(sizes))
    assert sizes[0] == 4 * MIB and sizes[:largest + 1] == sorted(sizes[:largest + 1])  # small first, growing
    assert sizes[largest:-1] == sorted(sizes[largest:-1], reverse=True) and sizes[-2] == 4 * MIB  # then shrinking
    assert sizes[-1] < 8 * MIB + 1  # the last one took a remainder too small to leave behind
