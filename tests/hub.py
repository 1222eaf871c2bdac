"""A small, protocol-faithful fake of the Hugging Face Hub, for tests without internet.

Usage::

    hub = FakeHub()
    f = hub.add_file("org/model", "model.safetensors", size=1 << 30)   # generated content
    hub.add_file("org/model", "config.json", b"{}", lfs=False)

    # sync code / subprocesses: a server in a background thread
    with running_hub(hub) as url:          # e.g. http://127.0.0.1:41234
        ...

    # async tests (pytest-aiohttp): same loop
    server = await aiohttp_server(make_app(hub))

Routes (model repos only; repo_id is ``org/name`` or ``name``):

* ``HEAD|GET /{repo_id}/resolve/{revision}/{path}``: the file, with ``X-Repo-Commit``,
  ``ETag``, ``Accept-Ranges``, ``Content-Length`` and, for LFS files, ``X-Linked-Etag`` /
  ``X-Linked-Size``. ``Range: bytes=N-``, ``bytes=N-M`` and ``bytes=-N`` give 206;
  an unsatisfiable range gives 416. Errors carry ``X-Error-Code`` / ``X-Error-Message``
  (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo). Xet is never advertised.
* ``HEAD|GET /repos/{repo_id}/{sha256}``: the "CDN". With ``hub.cdn = True`` resolve
  answers LFS files with a 302 to ``hub.cdn_url`` + this path, like the real Hub. The URL is
  signed like CloudFront's: ``...&Expires=<unix seconds>&Signature=<hex>``, valid for
  ``hub.cdn_ttl`` seconds (3600). An expired or badly signed URL gets 403 with
  ``<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>``;
  ``hub.expire_cdn_urls()`` expires every URL issued so far (no clock needed), and a new
  resolve gives a fresh one. A transfer already under way is not cut.
* ``GET /api/models/{repo_id}[/revision/{revision}]``: repo info (``?blobs=true`` adds sizes).
* ``POST /api/models/{repo_id}/paths-info/{revision}``: for ``HfApi.get_paths_info``.

Faults (``Faults``) can be set on ``hub.faults`` (all files) or on ``HubFile.faults``
(one file), between requests; they apply to file requests (resolve and CDN) only.

Observing transfers (resolve and CDN alike; read them from any thread)::

    hub.active_downloads        # file GETs whose body is being sent now (a stalled one too)
    hub.peak_downloads          # the most there were at once
    hub.peak_connections        # the most client sockets open at once (counted from their first request)
    hub.open_connections        # client sockets open now
    hub.reset_peaks()           # peaks back to the current counts
    f.bytes_sent                # body bytes of this file handed to client sockets, all requests
    [r.range for r in hub.requests if r.method == "GET"]   # [(0, 1048576), (1048576, None), ...]
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import quote, unquote

from aiohttp import web
from multidict import CIMultiDict

BLOCK = 1 << 20  # generated content and response bodies go in 1 MiB blocks
_NOISE = random.Random(0).randbytes(BLOCK)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_STOP = web.AppKey("stop", asyncio.Event)
_SLICES = 20  # throttled bodies go in writes of 1/20 s
_EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
)


def _git_sha1(chunks: Iterator[bytes], size: int) -> str:
    h = hashlib.sha1(b"blob %d\0" % size)
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


@dataclass
class Faults:
    """Misbehaviour to inject. Counters are used up as requests arrive.

    status_burst: answer the next requests with these statuses, one each, in order.
    rate_limit: answer the next N requests with 429 and ``RateLimit`` headers.
    retry_after: seconds for the ``Retry-After`` header of those answers (none if None).
    drop_after: close the connection after N body bytes of a GET.
    stall_after: send N body bytes of a GET, then hang until the client leaves.
    times: how many GETs drop_after / stall_after hit; then both reset to None.
    fault_ranges_from: only GETs whose body starts at or after this offset (the Range start;
        0 without Range or when Range is not honoured) use up drop_after / stall_after; the
        others are sent whole. Stays set when ``times`` runs out.
    ignore_range: always answer 200 with the full body.
    ignore_range_after: the first N GETs honour Range, later ones answer 200 with the full
        body (1: a server that ignores Range from the 2nd GET on). Counts down as GETs
        arrive; at 0, HEADs ignore Range too.
    corrupt: flip the bytes at every 1 MiB offset (0, 1 MiB, ...) sent; size unchanged.
    throttle_bps: limit each response's body to this many bytes per second. Each response
        (so each connection) has its own budget: N connections get N times the rate. Paced
        as a token bucket: writes of 1/20 s of body (at most 1 MiB), each preceded by a sleep
        until it is due (the first waits too), so the rate holds over seconds without drift;
        a client that falls behind catches up by at most one write. Read when the response
        starts.
    hold_at: once this many body bytes of the file were sent (all requests together), GETs send
        nothing more until ``release()``; the client sees a slow server, not an error.

    Every HEAD or GET of the file (resolve or CDN) uses up one status_burst / rate_limit
    answer; only GETs that send a body use up ``times`` and ``ignore_range_after``. A file's
    own faults go first.
    """

    status_burst: list[int] = field(default_factory=list)
    rate_limit: int = 0
    retry_after: int | None = None
    drop_after: int | None = None
    stall_after: int | None = None
    times: int = 1
    fault_ranges_from: int | None = None
    ignore_range: bool = False
    ignore_range_after: int | None = None
    corrupt: bool = False
    throttle_bps: int | None = None
    hold_at: int | None = None
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Let bodies held by ``hold_at`` go on (callable from any thread)."""
        self.released.set()

    def holds(self, sent: int) -> bool:
        return self.hold_at is not None and sent >= self.hold_at and not self.released.is_set()


@dataclass(eq=False)
class HubFile:
    """One file of a repo revision; content is ``data`` or generated from a seed.

    ``bytes_sent`` counts body bytes handed to client sockets, over all requests (resolve and
    CDN); set it to 0 to count afresh.
    """

    repo_id: str
    path: str
    revision: str
    commit: str
    size: int
    lfs: bool
    gated: bool
    data: bytes | None = None
    faults: Faults = field(default_factory=Faults)
    bytes_sent: int = field(default=0, init=False)

    @property
    def url_path(self) -> str:
        """``/{repo_id}/resolve/{revision}/{path}``, quoted like ``hf_hub_url`` does."""
        return f"/{self.repo_id}/resolve/{quote(self.revision, safe='')}/{quote(self.path)}"

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield bytes ``[start, end)`` in pieces that never cross a 1 MiB boundary."""
        end = self.size if end is None else end
        pos = start
        while pos < end:
            index, offset = divmod(pos, BLOCK)
            block = self._block(index) if self.data is None else self.data[index * BLOCK : (index + 1) * BLOCK]
            chunk = block[offset : end - index * BLOCK]
            yield chunk
            pos += len(chunk)

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` at once (for small files and assertions)."""
        return b"".join(self.chunks(start, end))

    def _block(self, index: int) -> bytes:
        seed = f"{self.repo_id}/{self.path}".encode() + index.to_bytes(8, "big")
        head = hashlib.sha256(seed).digest()
        return head + _NOISE[len(head) :]

    @cached_property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for chunk in self.chunks():
            h.update(chunk)
        return h.hexdigest()

    @cached_property
    def git_sha1(self) -> str:
        """Git blob id of the content (non-LFS) or of the LFS pointer file (LFS)."""
        if self.lfs:
            return _git_sha1(iter([self.pointer]), len(self.pointer))
        return _git_sha1(self.chunks(), self.size)

    @property
    def pointer(self) -> bytes:
        """The git-lfs pointer file that git stores instead of the content."""
        text = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n"
        return text.encode()

    @property
    def etag(self) -> str:
        """Quoted ETag as the Hub sends it: sha256 for LFS, git blob sha1 otherwise."""
        return f'"{self.sha256 if self.lfs else self.git_sha1}"'


@dataclass
class RecordedRequest:
    """One request as the hub saw it; ``host`` is the Host header, ``path`` the raw (quoted) path."""

    method: str
    host: str
    path: str
    headers: CIMultiDict[str]

    @property
    def range(self) -> tuple[int, int | None] | None:
        """The ``Range`` asked for, half-open like a slice, or None without a single valid one.

        ``bytes=0-99`` -> ``(0, 100)``, ``bytes=100-`` -> ``(100, None)``, ``bytes=-5`` -> ``(-5, None)``.
        """
        match = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if not match or match.group() == "bytes=-":
            return None
        first, last = match.groups()
        if not first:
            return -int(last), None
        if last and int(last) < int(first):
            return None
        return int(first), int(last) + 1 if last else None


class FakeHub:
    """In-memory repos plus the switches tests flip: tokens, cdn, faults.

    Attributes:
        tokens: bearer tokens that may read gated files.
        licenses: repo -> the licence its model card names (``cardData.license`` and a ``license:`` tag).
        cdn: answer resolve of LFS files with a 302 to ``cdn_url``.
        cdn_url: base url of the CDN host (set by ``running_hub``; set it yourself with ``make_app``).
        cdn_ttl: seconds a CDN URL stays valid after resolve issues it.
        faults: faults for every file.
        requests: every request seen, in order.
        active_downloads: file GETs whose body is being sent now (resolve and CDN).
        peak_downloads: the highest ``active_downloads`` reached (see ``reset_peaks``).
        peak_connections: the most client sockets open at once, each counted from its first request.
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, HubFile]]] = {}  # repo -> revision -> path -> file
        self.tokens: set[str] = set()
        self.licenses: dict[str, str] = {}  # repo -> the licence its model card names
        self.cdn = False
        self.cdn_url: str | None = None
        self.cdn_ttl = 3600
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.active_downloads = 0
        self.peak_downloads = 0
        self.peak_connections = 0
        self._blobs: dict[str, HubFile] = {}  # sha256 -> file, filled when resolve redirects
        self._transports: set[asyncio.BaseTransport] = set()  # client sockets seen, pruned when closed
        self._cdn_key = random.randbytes(32)
        self._cdn_generation = 0

    @property
    def open_connections(self) -> int:
        """Client sockets open now (those that have sent a request)."""
        return sum(not t.is_closing() for t in list(self._transports))

    def reset_peaks(self) -> None:
        """Set ``peak_downloads`` and ``peak_connections`` back to the current counts."""
        self.peak_downloads = self.active_downloads
        self.peak_connections = self.open_connections

    def expire_cdn_urls(self) -> None:
        """Make every CDN URL issued so far expired (403); later resolves give fresh ones."""
        self._cdn_generation += 1

    def _cdn_signature(self, path: str, expires: str) -> str:
        message = f"{path}\n{expires}\n{self._cdn_generation}".encode()
        return hmac.new(self._cdn_key, message, hashlib.sha256).hexdigest()

    def _connection_seen(self, transport: asyncio.BaseTransport | None) -> None:
        self._transports = {t for t in self._transports if not t.is_closing()}
        if transport is not None and not transport.is_closing():
            self._transports.add(transport)
        self.peak_connections = max(self.peak_connections, len(self._transports))

    @staticmethod
    def commit_of(repo_id: str, revision: str = "main") -> str:
        """The fake commit sha of a revision: fixed, 40 hex."""
        return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()

    def add_file(
        self,
        repo_id: str,
        path: str,
        data: bytes | None = None,
        *,
        size: int | None = None,
        revision: str = "main",
        lfs: bool = True,
        gated: bool = False,
    ) -> HubFile:
        """Add (or replace) a file. Without data, ``size`` bytes are generated on the fly."""
        if data is None and size is None:
            raise ValueError("give data or size")
        if data is not None and size is not None and size != len(data):
            raise ValueError("size does not match data")
        hub_file = HubFile(
            repo_id=repo_id,
            path=path,
            revision=revision,
            commit=self.commit_of(repo_id, revision),
            size=len(data) if data is not None else size,
            lfs=lfs,
            gated=gated,
            data=data,
        )
        self.repos.setdefault(repo_id, {}).setdefault(revision, {})[path] = hub_file
        return hub_file

    def find_revision(self, repo_id: str, revision: str) -> str | None:
        """Branch name for a branch name or its commit sha, else None."""
        for name in self.repos.get(repo_id, {}):
            if revision in (name, self.commit_of(repo_id, name)):
                return name
        return None


# --- HTTP -------------------------------------------------------------------

_HUB = web.AppKey("hub", FakeHub)


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})

    def response(self, as_json: bool = False) -> web.Response:
        headers = {**self.headers, "X-Error-Message": self.message}
        if self.code:
            headers["X-Error-Code"] = self.code
        if as_json:
            return web.json_response({"error": self.message}, status=self.status, headers=headers)
        return web.Response(status=self.status, text=self.message, headers=headers)


def _parts(request: web.Request) -> list[str]:
    return [unquote(p) for p in request.rel_url.raw_path.split("/")[1:]]


def _split_repo(parts: list[str], marker: str) -> tuple[str, list[str]] | None:
    """``[org, name, marker, *rest]`` or ``[name, marker, *rest]`` -> (repo_id, rest)."""
    for n in (2, 1):
        if len(parts) > n and parts[n] == marker:
            return "/".join(parts[:n]), parts[n + 1 :]
    return None


def _lookup(hub: FakeHub, repo_id: str, revision: str) -> str:
    """Branch name of ``revision``; raises the Hub's error when repo or revision is missing."""
    if repo_id not in hub.repos:
        raise _HubError(404, "RepoNotFound", "Repository not found")
    branch = hub.find_revision(repo_id, revision)
    if branch is None:
        raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
    return branch


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) of a single ``bytes=`` range; None to ignore it; raises 416 if unsatisfiable."""
    match = _RANGE.fullmatch(header.strip())
    if not match or match.group() == "bytes=-":
        return None
    first, last = match.groups()
    if not first:
        if int(last) == 0 or size == 0:
            raise _HubError(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
        return max(size - int(last), 0), size
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        raise _HubError(416, None, "Range Not Satisfiable", {"Content-Range": f"bytes */{size}"})
    return int(first), min(int(last) + 1, size) if last else size


def _authorized(hub: FakeHub, request: web.Request) -> bool | None:
    """None: no token sent; else whether the token is known."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return None
    return auth.removeprefix("Bearer ").strip() in hub.tokens


def _status_fault(hub_file: HubFile, hub: FakeHub) -> web.Response | None:
    for faults in (hub_file.faults, hub.faults):
        headers = {} if faults.retry_after is None else {"Retry-After": str(faults.retry_after)}
        if faults.status_burst:
            status = faults.status_burst.pop(0)
            return web.Response(status=status, text=f"injected {status}", headers=headers)
        if faults.rate_limit > 0:
            faults.rate_limit -= 1
            headers["RateLimit"] = f'"resolvers";r=0;t={faults.retry_after or 0}'
            headers["RateLimit-Policy"] = '"fixed window";"resolvers";q=3000;w=300'
            return _HubError(429, None, "Rate limit reached for resolvers.", headers).response()
    return None


def _honours_range(request: web.Request, both: tuple[Faults, Faults]) -> bool:
    """Whether this request gets its Range; a GET uses up one ``ignore_range_after``."""
    honour = True
    for faults in both:
        if faults.ignore_range:
            honour = False
        elif faults.ignore_range_after is not None:
            if faults.ignore_range_after <= 0:
                honour = False
            elif request.method == "GET":
                faults.ignore_range_after -= 1
    return honour


def _cut_fault(hub_file: HubFile, hub: FakeHub, start: int) -> tuple[str, int] | None:
    """("drop"|"stall", after_bytes) for a GET whose body starts at ``start``, using up one of ``times``."""
    for faults in (hub_file.faults, hub.faults):
        if faults.fault_ranges_from is not None and start < faults.fault_ranges_from:
            continue
        for kind in ("drop", "stall"):
            after = getattr(faults, f"{kind}_after")
            if after is not None and faults.times > 0:
                faults.times -= 1
                if faults.times == 0:
                    faults.drop_after = faults.stall_after = None
                    faults.times = 1
                return kind, after
    return None


async def _send_file(request: web.Request, hub: FakeHub, hub_file: HubFile, headers: dict) -> web.StreamResponse:
    """Answer with (part of) the file, honouring Range and the body faults."""
    both = (hub_file.faults, hub.faults)
    start, end, status = 0, hub_file.size, 200
    if _honours_range(request, both):
        try:
            span = _parse_range(request.headers.get("Range", ""), hub_file.size)
        except _HubError as e:
            e.headers.update(headers)
            return e.response()
        if span is not None:
            (start, end), status = span, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{hub_file.size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = end - start
    response.content_type = "application/octet-stream"
    await response.prepare(request)
    if request.method == "HEAD":
        return response

    hub.active_downloads += 1
    hub.peak_downloads = max(hub.peak_downloads, hub.active_downloads)
    try:
        return await _send_body(request, hub, hub_file, response, start, end)
    finally:
        hub.active_downloads -= 1


async def _send_body(
    request: web.Request, hub: FakeHub, hub_file: HubFile, response: web.StreamResponse, start: int, end: int
) -> web.StreamResponse:
    both = (hub_file.faults, hub.faults)
    cut = _cut_fault(hub_file, hub, start)
    limit = end - start if cut is None else min(cut[1], end - start)
    corrupt = any(f.corrupt for f in both)
    bps = hub_file.faults.throttle_bps or hub.faults.throttle_bps
    loop = asyncio.get_running_loop()
    pacer = _Pacer(bps, loop.time()) if bps else None
    sent = 0
    for chunk in hub_file.chunks(start, start + limit):
        if corrupt and (start + sent) % BLOCK == 0:
            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        for piece in _pieces(chunk, bps):
            if pacer is not None:
                await asyncio.sleep(pacer.delay(len(piece), loop.time()))
            while any(f.holds(hub_file.bytes_sent) for f in both) and not _gone(request):
                await asyncio.sleep(0.01)
            if _gone(request):
                return response
            await response.write(piece)
            sent += len(piece)
            hub_file.bytes_sent += len(piece)
    if cut is None:
        await response.write_eof()
        return response
    if cut[0] == "stall":
        stop = request.app[_STOP]
        while not stop.is_set() and not _gone(request):
            await asyncio.sleep(0.05)
    if not _gone(request):
        request.transport.close()
    return response


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


class _Pacer:
    """Token bucket for one response, starting empty: no byte leaves before ``bytes / bps`` seconds
    after the start, so the rate holds over any length of time; a late write is made up for by
    at most one slice."""

    def __init__(self, bps: int, now: float) -> None:
        self.bps, self.due = bps, now

    def delay(self, size: int, now: float) -> float:
        """Seconds to wait before writing ``size`` more bytes."""
        self.due = max(self.due, now - 1 / _SLICES) + size / self.bps
        return max(self.due - now, 0.0)


def _pieces(chunk: bytes, bps: int | None) -> Iterator[bytes]:
    step = max(bps // _SLICES, 1) if bps else len(chunk) or 1
    for i in range(0, len(chunk), step):
        yield chunk[i : i + step]


async def _resolve(request: web.Request) -> web.StreamResponse:
    hub: FakeHub = request.app[_HUB]
    split = _split_repo(_parts(request), "resolve")
    if split is None or len(split[1]) < 2:
        return _HubError(404, None, "Not found").response()
    repo_id, (revision, *path) = split
    try:
        hub_file = _find_file(hub, request, repo_id, revision, "/".join(path))
    except _HubError as e:
        return e.response()
    fault = _status_fault(hub_file, hub)
    if fault is not None:
        return fault

    etag = await asyncio.get_running_loop().run_in_executor(None, lambda: hub_file.etag)
    headers = {"X-Repo-Commit": hub_file.commit, "ETag": etag, "Accept-Ranges": "bytes"}
    if hub_file.lfs:
        headers["X-Linked-Etag"] = etag
        headers["X-Linked-Size"] = str(hub_file.size)
    if hub_file.lfs and hub.cdn:
        if hub.cdn_url is None:
            raise RuntimeError("hub.cdn is set but hub.cdn_url is not")
        hub._blobs[hub_file.sha256] = hub_file
        disposition = quote(f'inline; filename="{path[-1]}";', safe="")
        cdn_path = f"/repos/{repo_id}/{hub_file.sha256}"
        expires = str(int(time.time()) + hub.cdn_ttl)
        location = f"{hub.cdn_url}{cdn_path}?response-content-disposition={disposition}"
        location += f"&Expires={expires}&Signature={hub._cdn_signature(cdn_path, expires)}"
        headers["Location"] = location
        return web.Response(status=302, text=f"Found. Redirecting to {location}", headers=headers)
    return await _send_file(request, hub, hub_file, headers)


def _find_file(hub: FakeHub, request: web.Request, repo_id: str, revision: str, path: str) -> HubFile:
    branch = _lookup(hub, repo_id, revision)
    hub_file = hub.repos[repo_id][branch].get(path)
    if hub_file is None:
        commit = {"X-Repo-Commit": hub.commit_of(repo_id, branch)}
        raise _HubError(404, "EntryNotFound", "Entry not found", commit)
    if hub_file.gated:
        allowed = _authorized(hub, request)
        if allowed is None:
            message = f"Access to model {repo_id} is restricted. You must be authenticated to access it."
            raise _HubError(401, "GatedRepo", message)
        if not allowed:
            message = f"Access to model {repo_id} is restricted and you are not in the authorized list."
            raise _HubError(403, "GatedRepo", message)
    return hub_file


def _signed(hub: FakeHub, request: web.Request) -> bool:
    """Whether a CDN URL carries a valid signature and has not expired."""
    expires, signature = request.query.get("Expires", ""), request.query.get("Signature", "")
    if not expires.isdigit() or time.time() >= int(expires):
        return False
    return hmac.compare_digest(signature, hub._cdn_signature(request.rel_url.raw_path, expires))


async def _cdn(request: web.Request) -> web.StreamResponse:
    hub: FakeHub = request.app[_HUB]
    if not _signed(hub, request):
        return web.Response(status=403, text=_EXPIRED, content_type="application/xml")
    hub_file = hub._blobs.get(request.match_info["sha256"])
    if hub_file is None:
        return web.Response(status=404, text="NoSuchKey")
    fault = _status_fault(hub_file, hub)
    if fault is not None:
        return fault
    headers = {"ETag": f'"{hub_file.sha256}"', "Accept-Ranges": "bytes"}
    if "response-content-disposition" in request.query:
        headers["Content-Disposition"] = request.query["response-content-disposition"]
    return await _send_file(request, hub, hub_file, headers)


def _entry(hub_file: HubFile) -> dict:
    entry = {"type": "file", "path": hub_file.path, "oid": hub_file.git_sha1, "size": hub_file.size}
    if hub_file.lfs:
        entry["lfs"] = {"oid": hub_file.sha256, "size": hub_file.size, "pointerSize": len(hub_file.pointer)}
    return entry


def _auth_check(hub: FakeHub, request: web.Request, repo_id: str) -> web.Response:
    """``GET /api/models/{repo}/auth-check``: 200 when the caller may read the repo, else the Hub's
    error (401 GatedRepo without a token, 403 GatedRepo with one that has no access)."""
    if repo_id not in hub.repos:
        return _HubError(404, "RepoNotFound", "Repository not found").response(as_json=True)
    if any(f.gated for files in hub.repos[repo_id].values() for f in files.values()):
        allowed = _authorized(hub, request)
        if allowed is None:
            return _HubError(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must be "
                             "authenticated to access it.").response(as_json=True)
        if not allowed:
            return _HubError(403, "GatedRepo", f"Access to model {repo_id} is restricted and you are not in "
                             "the authorized list.").response(as_json=True)
    return web.json_response({})


async def _api(request: web.Request) -> web.Response:
    hub: FakeHub = request.app[_HUB]
    parts = _parts(request)[2:]  # drop "api", "models"
    if parts[-1:] == ["auth-check"] and request.method == "GET":
        return _auth_check(hub, request, "/".join(parts[:-1]))
    for marker in ("revision", "paths-info"):
        split = _split_repo(parts, marker)
        if split is not None and len(split[1]) == 1:
            repo_id, (revision,) = split
            break
    else:
        repo_id, revision, marker = "/".join(parts), "main", "revision"
    if (request.method == "POST") != (marker == "paths-info"):
        return _HubError(404, None, "Not found").response(as_json=True)
    try:
        branch = _lookup(hub, repo_id, revision)
    except _HubError as e:
        return e.response(as_json=True)
    files = hub.repos[repo_id][branch]
    loop = asyncio.get_running_loop()

    if marker == "paths-info":
        if request.content_type == "application/json":
            paths = (await request.json()).get("paths", [])
        else:
            paths = (await request.post()).getall("paths", [])
        result = []
        for path in paths:
            if path in files:
                result.append(await loop.run_in_executor(None, _entry, files[path]))
            elif any(p.startswith(path.rstrip("/") + "/") for p in files):
                tree = hashlib.sha1(f"{repo_id}@{branch}:{path}".encode()).hexdigest()
                result.append({"type": "directory", "path": path.rstrip("/"), "oid": tree})
        return web.json_response(result)

    siblings = []
    for hub_file in files.values():
        sibling = {"rfilename": hub_file.path}
        if request.query.get("blobs", "").lower() == "true":
            entry = await loop.run_in_executor(None, _entry, hub_file)
            sibling.update(size=entry["size"], blobId=entry["oid"])
            if "lfs" in entry:
                lfs = dict(entry["lfs"])
                lfs["sha256"] = lfs.pop("oid")
                sibling["lfs"] = lfs
        siblings.append(sibling)
    info = {
        "id": repo_id,
        "modelId": repo_id,
        "sha": hub.commit_of(repo_id, branch),
        "private": False,
        "gated": "auto" if any(f.gated for f in files.values()) else False,
        "disabled": False,
        "tags": [f"license:{hub.licenses[repo_id]}"] if repo_id in hub.licenses else [],
        **({"cardData": {"license": hub.licenses[repo_id]}} if repo_id in hub.licenses else {}),
        "lastModified": "2024-01-01T00:00:00.000Z",
        "siblings": siblings,
    }
    return web.json_response(info)


@web.middleware
async def _record(request: web.Request, handler):
    hub: FakeHub = request.app[_HUB]
    hub.requests.append(
        RecordedRequest(request.method, request.host, request.rel_url.raw_path, CIMultiDict(request.headers))
    )
    hub._connection_seen(request.transport)
    return await handler(request)


async def _on_shutdown(app: web.Application) -> None:
    app[_STOP].set()


def make_app(hub: FakeHub) -> web.Application:
    """The aiohttp application serving ``hub`` (hub and CDN routes alike)."""
    app = web.Application(middlewares=[_record])
    app[_HUB] = hub
    app[_STOP] = asyncio.Event()
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/api/models/{tail:.+}", _api, allow_head=False)
    app.router.add_post("/api/models/{tail:.+}", _api)
    app.router.add_get("/repos/{repo:.+}/{sha256:[0-9a-f]{64}}", _cdn)
    app.router.add_get("/{tail:.+}", _resolve)
    return app


def listen(host: str) -> socket.socket:
    """A socket bound to a free port of `host`."""
    sock = socket.socket()
    sock.bind((host, 0))
    return sock


@contextmanager
def serving_on(app: web.Application, sockets: list[socket.socket], name: str) -> Iterator[None]:
    """Serve `app` on these bound sockets from an event loop in a background thread of this name."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> None:
        await runner.setup()
        for sock in sockets:
            await web.SockSite(runner, sock).start()

    try:
        asyncio.run_coroutine_threadsafe(start(), loop).result()
        yield
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@contextmanager
def running_hub(hub: FakeHub) -> Iterator[str]:
    """Serve ``hub`` from a background thread; yields the base url (``http://127.0.0.1:PORT``).

    The CDN is served by the same app on 127.0.0.2 (another port on 127.0.0.1 if that
    address cannot be bound), and ``hub.cdn_url`` is set to it.
    """
    sock = listen("127.0.0.1")
    try:
        cdn_sock = listen("127.0.0.2")
    except OSError:
        cdn_sock = listen("127.0.0.1")
    host, port = cdn_sock.getsockname()
    hub.cdn_url = f"http://{host}:{port}"
    with serving_on(make_app(hub), [sock, cdn_sock], "fake-hub"):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
