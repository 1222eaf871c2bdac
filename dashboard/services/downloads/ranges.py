"""Which byte ranges of a file are on disk, and which connection fetches what next.

`Extents` is a set of disjoint `[start, end)` intervals: what a `.part` holds, as its sidecar
records it. `RangePlan` hands out segments to connections: first pieces of what nobody fetches,
lowest offsets first (so the prefix that can be hashed grows steadily, and pieces get smaller
as the end nears), then, when nothing is free, half of the largest segment another connection
is still fetching (work stealing, as aria2 does), never a piece smaller than `min_piece`, so all
connections finish together. Split points are multiples of `align` and every segment starts on a multiple of
`block` (a resumed range starts up to a block early), so writes can bypass the page cache.
Pure bookkeeping: no I/O, no locks; use it from one thread (the event loop).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MIN_PIECE = 4 * 1024 * 1024
#: The largest piece a connection takes from the free ranges at once.
MAX_PIECE = 64 * 1024 * 1024
#: A piece is the free bytes' share of each connection divided by this: big enough that a
#: request's first-byte wait costs little, small enough that the hashed prefix keeps up.
PIECES_PER_SHARE = 2
#: Split points are multiples of this.
ALIGN = 1024 * 1024
#: Every segment starts on a multiple of this (the direct-I/O block).
BLOCK = 4096


class Extents:
    """Disjoint, sorted `[start, end)` intervals; adjacent ones are merged."""

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        """Mark `[start, end)` as held."""
        if end <= start:
            return
        i = bisect.bisect_left(self._ends, start)  # first interval that ends at or after start
        j = bisect.bisect_right(self._starts, end)  # intervals before j start at or before end
        if i < j:
            start, end = min(start, self._starts[i]), max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def total(self) -> int:
        """Bytes held."""
        return sum(e - s for s, e in self)

    def prefix(self) -> int:
        """Where the held bytes from offset 0 stop (0 when offset 0 is not held)."""
        return self._ends[0] if self._starts and self._starts[0] == 0 else 0

    def gaps(self, size: int) -> list[tuple[int, int]]:
        """The ranges of `[0, size)` not held."""
        gaps, pos = [], 0
        for start, end in self:
            if start > pos:
                gaps.append((pos, min(start, size)))
            pos = max(pos, end)
        if pos < size:
            gaps.append((pos, size))
        return [(s, e) for s, e in gaps if e > s]

    def as_list(self) -> list[list[int]]:
        """JSON-friendly `[[start, end], ...]`."""
        return [[s, e] for s, e in self]


@dataclass(eq=False)
class Segment:
    """What one connection fetches: `[start, end)`; `pos` is how far it got. `end` may shrink
    while it runs (another connection stole the rest)."""

    start: int
    end: int
    pos: int = 0

    def __post_init__(self) -> None:
        self.pos = max(self.pos, self.start)

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.pos)


class RangePlan:
    """Hands the missing ranges of a `size`-byte file to connections."""

    def __init__(self, size: int, held: Extents | None = None, min_piece: int = MIN_PIECE,
                 max_piece: int = MAX_PIECE, align: int = ALIGN, block: int = BLOCK) -> None:
        self.size = size
        self.min_piece = max(min_piece, align)
        self.max_piece = max(max_piece, self.min_piece)
        self.min_steal = max(align, self.min_piece // 2)  # the smallest half a thief takes
        self._grown = self.min_piece  # pieces start small and double: they finish in the order they start
        self.align = align
        self.block = block
        self._free = [Segment(s, e) for s, e in (held or Extents()).gaps(size)]
        self.active: list[Segment] = []

    @property
    def finished(self) -> bool:
        """Nothing is free and no connection has anything left to fetch."""
        return not self._free and all(s.remaining == 0 for s in self.active)

    def remaining(self) -> int:
        """Bytes not yet handed to a writer."""
        return sum(s.remaining for s in self._free) + sum(s.remaining for s in self.active)

    def can_split(self) -> bool:
        """Whether a new connection would get something: a free range, or one worth splitting."""
        return bool(self._free) or any(s.remaining >= 2 * self.min_steal for s in self.active)

    def claim(self, connections: int = 1) -> Segment | None:
        """A segment for an idle connection: a piece of the first free range (a part of the free
        bytes' share of each of `connections`, within the piece sizes), else half of the largest
        running one."""
        if self._free:
            gap = self._free[0]
            share = sum(s.remaining for s in self._free) // (PIECES_PER_SHARE * max(1, connections))
            piece = _up(min(self.max_piece, self._grown, max(self.min_piece, share)), self.align)
            self._grown *= 2
            start = _down(gap.pos, self.block)
            end = gap.end if gap.end - start <= piece + self.min_piece else _down(start + piece, self.align)
            if end >= gap.end:
                self._free.pop(0)
            else:
                gap.start = gap.pos = end
            segment = Segment(start, end)
            self.active.append(segment)
            return segment
        victim = max(self.active, key=lambda s: s.remaining, default=None)
        if victim is None or victim.remaining < 2 * self.min_steal:
            return None
        middle = _down(victim.pos + victim.remaining // 2, self.align)
        segment = Segment(middle, victim.end)
        victim.end = middle
        self.active.append(segment)
        return segment

    def release(self, segment: Segment) -> None:
        """A connection stops fetching `segment` (done, failed or stopped): what is left is free again.
        Releasing twice changes nothing."""
        if segment not in self.active:
            return
        self.active.remove(segment)
        if segment.remaining:
            self._free.append(Segment(segment.pos, segment.end))
            self._free.sort(key=lambda s: s.start)


def _down(value: int, align: int) -> int:
    return value - value % align


def _up(value: int, align: int) -> int:
    return value + (-value) % align
