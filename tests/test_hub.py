"""The fake Hub (tests/hub.py) against the real huggingface_hub client, and each injected fault."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder
from multidict import CIMultiDict

from tests.hub import BLOCK, FakeHub, Faults, RecordedRequest, _Pacer, make_app, running_hub

REPO = "org/model"
MIB = 1 << 20


@pytest.fixture
def hub() -> FakeHub:
    hub = FakeHub()
    hub.add_file(REPO, "weights/model.bin", size=3 * MIB + 5)
    hub.add_file(REPO, "config.json", b"hello\n", lfs=False)
    hub.add_file(REPO, "gated.bin", b"secret bytes", gated=True)
    hub.tokens.add("hf_good")
    return hub


@pytest.fixture
def hf_url(hub, monkeypatch):
    """Run the hub in a thread and point huggingface_hub at it, as HF_ENDPOINT at import would."""
    with running_hub(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)  # for subprocesses
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield url


def file_requests(hub):
    """Requests for file bytes; huggingface_hub also GETs /api/agent-harnesses once per process."""
    return [r for r in hub.requests if "/resolve/" in r.path or r.path.startswith("/repos/")]


def download(tmp_path, filename, **kwargs):
    kwargs.setdefault("token", False)
    path = hf_hub_download(REPO, filename, local_dir=tmp_path / "out", cache_dir=tmp_path / "cache", **kwargs)
    with open(path, "rb") as f:
        return f.read()


# --- content -----------------------------------------------------------------


def test_generated_content_is_deterministic_and_consistent():
    a = FakeHub().add_file(REPO, "x.bin", size=2 * BLOCK + 7)
    b = FakeHub().add_file(REPO, "x.bin", size=2 * BLOCK + 7)
    other = FakeHub().add_file(REPO, "y.bin", size=2 * BLOCK + 7)
    data = a.read()
    assert len(data) == a.size
    assert data == b.read() and data != other.read()
    assert data[:BLOCK] != data[BLOCK : 2 * BLOCK]
    assert a.read(BLOCK - 3, BLOCK + 3) == data[BLOCK - 3 : BLOCK + 3]
    assert all(len(c) <= BLOCK for c in a.chunks())
    assert a.sha256 == hashlib.sha256(data).hexdigest()
    assert a.etag == f'"{a.sha256}"'


def test_non_lfs_etag_is_the_git_blob_sha1(hub):
    config = hub.repos[REPO]["main"]["config.json"]
    assert config.etag == '"ce013625030ba8dba906f756967f9e9ca394464a"'  # git hash-object of b"hello\n"


# --- huggingface_hub against the hub ------------------------------------------


def test_hf_hub_download_lfs_and_plain_files(hub, hf_url, tmp_path):
    model = hub.repos[REPO]["main"]["weights/model.bin"]
    assert download(tmp_path, "weights/model.bin") == model.read()
    assert [(r.method, r.path) for r in file_requests(hub)] == [("HEAD", model.url_path), ("GET", model.url_path)]
    assert download(tmp_path, "config.json") == b"hello\n"
    assert download(tmp_path, "config.json", revision=hub.commit_of(REPO), force_download=True) == b"hello\n"
    assert hub.requests[-1].path == f"/{REPO}/resolve/{hub.commit_of(REPO)}/config.json"
    hub.add_file(REPO, "config.json", b"pr\n", lfs=False, revision="refs/pr/1")
    assert download(tmp_path, "config.json", revision="refs/pr/1") == b"pr\n"
    assert hub.requests[-1].path == f"/{REPO}/resolve/refs%2Fpr%2F1/config.json"


def test_hf_hub_download_into_the_cache(hub, hf_url, tmp_path):
    path = hf_hub_download(REPO, "config.json", cache_dir=tmp_path, token=False)
    assert f"snapshots/{hub.commit_of(REPO)}/config.json" in path


def test_get_hf_file_metadata(hub, hf_url):
    model = hub.repos[REPO]["main"]["weights/model.bin"]
    meta = get_hf_file_metadata(hf_hub_url(REPO, "weights/model.bin"), token=False)
    assert (meta.commit_hash, meta.etag, meta.size) == (model.commit, model.sha256, model.size)
    assert meta.location == hf_url + model.url_path
    assert meta.xet_file_data is None
    meta = get_hf_file_metadata(hf_hub_url(REPO, "config.json"), token=False)
    assert (meta.etag, meta.size) == ("ce013625030ba8dba906f756967f9e9ca394464a", 6)


def test_errors_map_to_huggingface_hub_exceptions(hf_url, tmp_path):
    with pytest.raises(GatedRepoError) as anonymous:
        download(tmp_path, "gated.bin")
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as unknown:
        download(tmp_path, "gated.bin", token="hf_bad")
    assert unknown.value.response.status_code == 403
    assert download(tmp_path, "gated.bin", token="hf_good") == b"secret bytes"
    with pytest.raises(EntryNotFoundError):
        download(tmp_path, "missing.bin")
    with pytest.raises(RevisionNotFoundError):
        download(tmp_path, "config.json", revision="nope")
    with pytest.raises(RepositoryNotFoundError) as missing:
        hf_hub_download("org/missing", "config.json", local_dir=tmp_path, token=False)
    assert not isinstance(missing.value, GatedRepoError)


def test_cdn_redirect_drops_authorization(hub, hf_url, tmp_path):
    hub.cdn = True
    gated = hub.add_file(REPO, "gated-big.bin", size=MIB + 1, gated=True)
    meta = get_hf_file_metadata(hf_hub_url(REPO, "gated-big.bin"), token="hf_good")
    assert meta.location.startswith(hub.cdn_url) and not hub.cdn_url.startswith(hf_url)
    assert (meta.etag, meta.size) == (gated.sha256, gated.size)

    hub.requests.clear()
    assert download(tmp_path, "gated-big.bin", token="hf_good") == gated.read()
    cdn_host = urlsplit(hub.cdn_url).netloc
    head, get = file_requests(hub)
    assert head.method == "HEAD" and head.headers["Authorization"] == "Bearer hf_good"
    assert get.method == "GET" and get.host == cdn_host and "Authorization" not in get.headers
    assert download(tmp_path, "config.json") == b"hello\n"  # non-LFS files are not redirected
    assert hub.requests[-1].host != cdn_host


def test_hf_resumes_after_a_dropped_connection(hub, hf_url, tmp_path):
    # huggingface_hub only counts whole DOWNLOAD_CHUNK_SIZE (10 MiB) chunks when it resumes.
    chunk = constants.DOWNLOAD_CHUNK_SIZE
    big = hub.add_file(REPO, "big.bin", size=chunk + MIB)
    big.faults.drop_after = chunk + 1000
    assert download(tmp_path, "big.bin") == big.read()
    gets = [r for r in file_requests(hub) if r.method == "GET"]
    assert [g.headers.get("Range") for g in gets] == [None, f"bytes={chunk}-"]


def test_hf_retries_a_503_burst(hub, hf_url, tmp_path):
    hub.faults.status_burst = [503]
    assert download(tmp_path, "config.json") == b"hello\n"
    assert hub.faults.status_burst == []


def test_hf_api_paths_info_and_model_info(hub, hf_url):
    api = HfApi(endpoint=hf_url, token=False)
    model = hub.repos[REPO]["main"]["weights/model.bin"]
    infos = api.get_paths_info(REPO, ["weights/model.bin", "config.json", "weights", "missing"])
    file, config, folder = infos
    assert isinstance(file, RepoFile) and isinstance(folder, RepoFolder)
    assert (file.path, file.size, file.lfs.sha256, file.lfs.size) == (model.path, model.size, model.sha256, model.size)
    assert file.blob_id == model.git_sha1 and file.lfs.pointer_size == len(model.pointer)
    assert (config.lfs, config.blob_id, config.size) == (None, "ce013625030ba8dba906f756967f9e9ca394464a", 6)
    assert folder.path == "weights"

    info = api.model_info(REPO, revision="main", files_metadata=True)
    assert info.sha == hub.commit_of(REPO) and info.gated == "auto"
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["weights/model.bin"].lfs.sha256 == model.sha256
    assert siblings["config.json"].lfs is None
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="nope")
    with pytest.raises(RepositoryNotFoundError):
        api.get_paths_info("org/missing", ["x"])


def test_subprocess_sees_the_hub_through_hf_endpoint(hf_url, tmp_path):
    code = "import sys, huggingface_hub as h; print(h.hf_hub_download(*sys.argv[1:3], local_dir=sys.argv[3]))"
    env = {**os.environ, "HF_HOME": str(tmp_path / "home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    args = [sys.executable, "-c", code, REPO, "config.json", str(tmp_path / "out")]
    path = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.strip()
    with open(path, "rb") as f:
        assert f.read() == b"hello\n"


def test_shutdown_does_not_wait_for_a_stalled_download():
    hub = FakeHub()
    hub.add_file(REPO, "big.bin", size=MIB).faults.stall_after = 10
    with running_hub(hub) as url:
        conn = http.client.HTTPConnection(urlsplit(url).netloc)
        conn.request("GET", hub.repos[REPO]["main"]["big.bin"].url_path)
        assert conn.getresponse().read(10) == hub.repos[REPO]["main"]["big.bin"].read(0, 10)
    conn.close()


# --- Range and faults, with aiohttp in the same loop ---------------------------


@pytest.fixture
async def served(hub, aiohttp_server):
    """(hub, base url, session, the big file) with the hub served in this loop."""
    server = await aiohttp_server(make_app(hub))
    async with aiohttp.ClientSession() as session:
        yield hub, str(server.make_url("")).rstrip("/"), session, hub.repos[REPO]["main"]["weights/model.bin"]


async def fetch(session, url, **kwargs) -> tuple[aiohttp.ClientResponse, bytes]:
    async with session.get(url, **kwargs) as response:
        return response, await response.read()


async def fetch_until_error(session, url, **kwargs) -> tuple[bytes, Exception | None]:
    """Body bytes received before the transfer failed, and the error."""
    body = b""
    try:
        async with session.get(url, **kwargs) as response:
            async for chunk in response.content.iter_any():
                body += chunk
    except aiohttp.ClientError as e:
        return body, e
    return body, None


async def test_ranges(served):
    _, url, session, f = served
    cases = {"bytes=10-19": (10, 20), "bytes=100-": (100, f.size), "bytes=-5": (f.size - 5, f.size)}
    for header, (start, end) in cases.items():
        response, body = await fetch(session, url + f.url_path, headers={"Range": header})
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{f.size}"
        assert body == f.read(start, end)
    response, _ = await fetch(session, url + f.url_path, headers={"Range": f"bytes={f.size}-"})
    assert response.status == 416 and response.headers["Content-Range"] == f"bytes */{f.size}"
    response, body = await fetch(session, url + f.url_path, headers={"Range": "bytes=9-3"})
    assert response.status == 200 and len(body) == f.size  # invalid range: ignored


async def test_head_has_the_hub_headers(served):
    _, url, session, f = served
    async with session.head(url + f.url_path) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(f.size)
        assert response.headers["X-Linked-Size"] == str(f.size)
        assert response.headers["X-Linked-Etag"] == response.headers["ETag"] == f.etag
        assert response.headers["X-Repo-Commit"] == f.commit
        assert response.headers["Accept-Ranges"] == "bytes"
    async with session.head(url + "/org/model/resolve/main/nope") as response:
        assert response.status == 404 and response.headers["X-Error-Code"] == "EntryNotFound"
        assert response.headers["X-Repo-Commit"] == f.commit


async def test_ignore_range(served):
    _, url, session, f = served
    f.faults.ignore_range = True
    response, body = await fetch(session, url + f.url_path, headers={"Range": "bytes=10-"})
    assert response.status == 200 and body == f.read()


async def test_status_burst_then_success(served):
    hub, url, session, f = served
    hub.faults = Faults(status_burst=[503, 502], retry_after=7)
    statuses = []
    for _ in range(3):
        response, _ = await fetch(session, url + f.url_path)
        statuses.append((response.status, response.headers.get("Retry-After")))
    assert statuses == [(503, "7"), (502, "7"), (200, None)]


async def test_rate_limit(served):
    _, url, session, f = served
    f.faults.rate_limit, f.faults.retry_after = 1, 3
    response, _ = await fetch(session, url + f.url_path)
    assert response.status == 429 and response.headers["Retry-After"] == "3"
    assert response.headers["RateLimit"] == '"resolvers";r=0;t=3'
    response, _ = await fetch(session, url + f.url_path)
    assert response.status == 200


async def test_drop_after_times(served):
    _, url, session, f = served
    f.faults.drop_after, f.faults.times = 1234, 2
    for _ in range(2):
        body, error = await fetch_until_error(session, url + f.url_path)
        assert isinstance(error, aiohttp.ClientPayloadError) and body == f.read(0, 1234)
    assert f.faults.drop_after is None
    body, error = await fetch_until_error(session, url + f.url_path, headers={"Range": "bytes=1234-"})
    assert error is None and body == f.read(1234)


async def test_stall_after(served):
    hub, url, session, f = served
    hub.faults.stall_after = 500
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    body, error = await fetch_until_error(session, url + f.url_path, timeout=timeout)
    assert isinstance(error, aiohttp.ServerTimeoutError) and body == f.read(0, 500)
    body, error = await fetch_until_error(session, url + f.url_path)
    assert error is None and body == f.read()


async def test_corrupt_keeps_the_size_but_not_the_hash(served):
    _, url, session, f = served
    f.faults.corrupt = True
    _, body = await fetch(session, url + f.url_path)
    good = f.read()
    assert len(body) == f.size and hashlib.sha256(body).hexdigest() != f.sha256
    assert [i for i in range(f.size) if body[i] != good[i]] == [0, BLOCK, 2 * BLOCK, 3 * BLOCK]


async def test_throttle_leaves_the_file_half_sent(served):
    _, url, session, f = served
    f.faults.throttle_bps = 10_000  # 3 MiB would take minutes
    async with session.get(url + f.url_path) as response:
        first = await response.content.readany()
        assert first == f.read(0, len(first)) and response.content.total_bytes < f.size


async def test_cdn_on_another_host_with_aiohttp(served, aiohttp_server):
    hub, url, session, f = served
    cdn = await aiohttp_server(make_app(hub), host="127.0.0.2")
    hub.cdn, hub.cdn_url = True, str(cdn.make_url("")).rstrip("/")
    async with session.head(url + f.url_path, allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith(hub.cdn_url)
        assert response.headers["X-Linked-Size"] == str(f.size)
    hub.requests.clear()
    response, body = await fetch(session, url + f.url_path, headers={"Authorization": "Bearer hf_good"})
    assert body == f.read()
    assert [(r.host == url.split("//")[1], "Authorization" in r.headers) for r in file_requests(hub)] == [
        (True, True),
        (False, False),
    ]


async def test_ignore_range_after_the_first_get(served):
    _, url, session, f = served
    f.faults.ignore_range_after = 1
    response, body = await fetch(session, url + f.url_path, headers={"Range": "bytes=10-19"})
    assert response.status == 206 and body == f.read(10, 20)
    response, body = await fetch(session, url + f.url_path, headers={"Range": "bytes=10-"})
    assert response.status == 200 and body == f.read()
    assert f.faults.ignore_range_after == 0
    async with session.head(url + f.url_path, headers={"Range": "bytes=10-"}) as response:
        assert response.status == 200 and response.headers["Content-Length"] == str(f.size)


async def test_fault_ranges_from_hits_only_the_later_range(served):
    hub, url, session, f = served
    half = f.size // 2
    f.faults.drop_after, f.faults.fault_ranges_from = 100, half
    body, error = await fetch_until_error(session, url + f.url_path)
    assert error is None and body == f.read()
    body, error = await fetch_until_error(session, url + f.url_path, headers={"Range": f"bytes=0-{half - 1}"})
    assert error is None and body == f.read(0, half)
    body, error = await fetch_until_error(session, url + f.url_path, headers={"Range": f"bytes={half}-"})
    assert isinstance(error, aiohttp.ClientPayloadError) and body == f.read(half, half + 100)
    body, error = await fetch_until_error(session, url + f.url_path, headers={"Range": f"bytes={half + 100}-"})
    assert error is None and body == f.read(half + 100)  # times used up
    assert [r.range for r in file_requests(hub)] == [None, (0, half), (half, None), (half + 100, None)]


def test_recorded_range_is_half_open_like_a_slice():
    def asked(header):
        return RecordedRequest("GET", "hub", "/x", CIMultiDict({"Range": header})).range

    assert [asked(h) for h in ("bytes=0-99", "bytes=100-", "bytes=-5", "bytes=9-3", "bytes=0-1,5-6")] == [
        (0, 100),
        (100, None),
        (-5, None),
        None,
        None,
    ]
    assert RecordedRequest("GET", "hub", "/x", CIMultiDict()).range is None


async def test_counts_downloads_connections_and_bytes_sent(served):
    hub, url, session, f = served
    f.faults.stall_after, f.faults.times = 10, 2  # two bodies stay open
    hub.faults.drop_after = 5  # then the third GET is cut
    async with session.head(url + f.url_path) as response:
        assert response.status == 200
    stalled = [await session.get(url + f.url_path, headers={"Range": f"bytes={i * MIB}-"}) for i in range(2)]
    for i, response in enumerate(stalled):
        assert await response.content.readexactly(10) == f.read(i * MIB, i * MIB + 10)
    assert (hub.active_downloads, hub.peak_downloads) == (2, 2)
    body, error = await fetch_until_error(session, url + f.url_path)
    assert isinstance(error, aiohttp.ClientPayloadError) and body == f.read(0, 5)
    assert (hub.active_downloads, hub.peak_downloads) == (2, 3)
    assert hub.peak_connections == 3  # the HEAD's connection was reused by the first GET
    hub.reset_peaks()
    assert hub.peak_downloads == 2 and hub.peak_connections == hub.open_connections == 2  # the hub cut the third
    assert f.bytes_sent == 10 + 10 + 5
    for response in stalled:
        response.close()

    f.bytes_sent = 0
    await fetch(session, url + f.url_path, headers={"Range": "bytes=-7"})
    await fetch(session, url + f.url_path)
    assert f.bytes_sent == 7 + f.size


async def test_throttled_ranges_in_parallel_add_up_to_the_file(served):
    hub, url, session, f = served
    hub.faults.throttle_bps = 16 * MIB  # slices of 0.8 MiB, across the 1 MiB blocks
    ranges = [(0, MIB + 1), (MIB + 1, 2 * MIB), (2 * MIB, f.size)]
    bodies = await asyncio.gather(
        *(fetch(session, url + f.url_path, headers={"Range": f"bytes={a}-{b - 1}"}) for a, b in ranges)
    )
    assert b"".join(body for _, body in bodies) == f.read()
    assert f.bytes_sent == f.size


def test_throttle_paces_without_drift():
    pacer, now = _Pacer(1000, 0.0), 0.0
    for _ in range(100):
        now += pacer.delay(50, now)  # wait until the slice is due
        now += 0.01  # the write itself takes 10 ms
    assert now == pytest.approx(5.0 + 0.01)  # 5000 bytes at 1000 B/s: the last slice went at 5 s
    now += 1.0  # the client read nothing for a second
    assert pacer.delay(50, now) == 0  # one slice is made up at once
    assert pacer.delay(50, now) == pytest.approx(0.05)  # then the pace is back


async def test_cdn_urls_are_signed_and_expire(served, aiohttp_server):
    hub, url, session, f = served
    cdn = await aiohttp_server(make_app(hub), host="127.0.0.2")
    hub.cdn, hub.cdn_url = True, str(cdn.make_url("")).rstrip("/")

    async def location() -> str:
        async with session.head(url + f.url_path, allow_redirects=False) as response:
            assert response.status == 302
            return response.headers["Location"]

    async def status(method: str, cdn_url: str) -> tuple[int, str]:
        async with session.request(method, cdn_url) as response:
            return response.status, await response.text()

    signed = await location()
    query = parse_qs(urlsplit(signed).query)
    assert time.time() < int(query["Expires"][0]) <= time.time() + hub.cdn_ttl
    assert len(query["Signature"][0]) == 64
    assert (await fetch(session, signed))[1] == f.read()
    assert (await status("HEAD", signed))[0] == 200
    denied = (403, "<Code>AccessDenied</Code><Message>Request has expired</Message>")
    for tampered in (signed.replace("Signature=", "Signature=0"), signed.replace("Expires=", "Expires=1")):
        code, text = await status("GET", tampered)
        assert (code, denied[1] in text) == (403, True)

    async with session.get(signed) as in_flight:
        first = await in_flight.content.readexactly(10)
        hub.expire_cdn_urls()
        assert first + await in_flight.read() == f.read()  # a transfer under way is not cut
    for method in ("GET", "HEAD"):
        code, text = await status(method, signed)
        assert code == 403 and (method == "HEAD" or denied[1] in text)
    fresh = await location()
    assert fresh != signed and (await fetch(session, fresh))[1] == f.read()

    hub.cdn_ttl = 0
    assert (await status("GET", await location()))[0] == 403
