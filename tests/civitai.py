"""A small, protocol-faithful fake of Civitai, for tests without internet.

Usage::

    civitai = FakeCivitai()
    v = civitai.add_version(2514310, model_id=827184, name="waiIllustrious_v160.safetensors", size=3 << 20)
    with running_civitai(civitai) as url:   # http://127.0.0.1:PORT; the CDN on civitai.cdn_url
        ...

Routes, as Civitai answers a client that is not a browser (JSON errors):

* ``GET /api/v1/model-versions/{id}``: the version (``modelId``, ``air``, ``files[]`` with ``name``,
  ``sizeKB``, ``hashes.SHA256`` in upper-case hex, ``downloadUrl``, ``primary``); 404
  ``{"error": "Model not found"}`` for an unknown one. Public: no token needed.
* ``GET /api/v1/model-versions/by-hash/{sha256}``: the version whose file has that hash (any case),
  with ``trainedWords`` and ``images`` (a 1x1 PNG on the CDN, ``/images/{id}.png``); 404 ``{"error":
  "Model not found"}`` for a hash Civitai does not know.
* ``GET /api/v1/models/{id}``: the model with its licence permissions (``allowNoCredit``,
  ``allowCommercialUse`` as a list, ``allowDerivatives``, ``allowDifferentLicense``) and
  ``modelVersions`` newest first; 404 for an unknown one.
* ``GET|HEAD /api/download/models/{id}``: 307 to a signed, short-lived file URL on the CDN (another
  address or port), with ``Cache-Control: no-store``. ``access="login"``: 401 ``{"error":
  "Unauthorized", "message": ...}`` without a known ``Authorization: Bearer`` token;
  ``access="early_access"``: 403 ``{"error": "Early Access", "deadline": ..., "message": ...}``
  unless the token is one of the version's ``buyers``. A browser-like User-Agent gets an HTML login
  page instead (what a server-side downloader must never trigger). 404 ``{"error": "File not found"}``.
* ``GET|HEAD /files/{id}/{name}?Expires=..&Signature=..`` (the CDN): the bytes, with
  ``Content-Disposition: attachment; filename="<name>"``, ``Accept-Ranges`` and ``Range``/206/416;
  403 for a bad signature.

``civitai.requests`` records every request (``host``, ``path``, ``headers``), CDN ones included.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web
from hub import RecordedRequest, listen, serving_on

_CIVITAI = web.AppKey("civitai", object)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_BROWSERS = ("mozilla", "chrome", "safari", "firefox", "opera", "edge")
#: A 1x1 PNG: every version's preview image.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8"
                    "ffff3f0005fe02fea7d6a4920000000049454e44ae426082")


@dataclass
class CivitaiVersion:
    """One model version with its one (primary) file."""

    id: int
    model_id: int
    name: str
    data: bytes
    access: str = "public"  # "public", "login" or "early_access"
    model_type: str = "LORA"
    buyers: set[str] = field(default_factory=set)
    trained_words: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class FakeCivitai:
    """Versions plus the switches tests flip: tokens (logged-in users), versions' access."""

    def __init__(self) -> None:
        self.versions: dict[int, CivitaiVersion] = {}
        self.tokens: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.url: str | None = None
        self.cdn_url: str | None = None
        self._key = random.randbytes(32)

    def add_version(self, version_id: int, *, model_id: int, name: str, size: int = 1 << 20,
                    access: str = "public", model_type: str = "LORA") -> CivitaiVersion:
        data = random.Random(version_id).randbytes(size)
        version = CivitaiVersion(version_id, model_id, name, data, access, model_type)
        self.versions[version_id] = version
        return version

    def signature(self, path: str, expires: str) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def requests_to(self, base: str) -> list[RecordedRequest]:
        host = base.split("//", 1)[1]
        return [r for r in self.requests if r.host == host]


def _token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    return auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None


async def _version(request: web.Request) -> web.Response:
    civitai: FakeCivitai = request.app[_CIVITAI]
    version = civitai.versions.get(int(request.match_info["id"]))
    if version is None:
        return web.json_response({"error": "Model not found"}, status=404)
    return web.json_response(_version_answer(civitai, version))


async def _by_hash(request: web.Request) -> web.Response:
    civitai: FakeCivitai = request.app[_CIVITAI]
    wanted = request.match_info["hash"].lower()
    version = next((v for v in civitai.versions.values() if v.sha256 == wanted), None)
    if version is None:
        return web.json_response({"error": "Model not found"}, status=404)
    return web.json_response(_version_answer(civitai, version))


async def _image(request: web.Request) -> web.Response:
    return web.Response(body=PNG, content_type="image/png")


def _version_answer(civitai: FakeCivitai, version: CivitaiVersion) -> dict:
    download = f"{civitai.url}/api/download/models/{version.id}"
    return {
        "id": version.id, "modelId": version.model_id, "name": "v1.0", "baseModel": "SDXL 1.0",
        "air": f"urn:air:sdxl:{version.model_type.lower()}:civitai:{version.model_id}@{version.id}",
        "status": "Published", "model": {"name": "Test model", "type": version.model_type, "nsfw": False},
        "files": [{"id": version.id * 10, "name": version.name, "type": "Model", "sizeKB": len(version.data) / 1024,
                   "metadata": {"format": "SafeTensor", "size": "pruned", "fp": "fp16"},
                   "hashes": {"SHA256": version.sha256.upper(), "AutoV2": version.sha256[:10].upper()},
                   "downloadUrl": download, "primary": True}],
        "downloadUrl": download, "trainedWords": version.trained_words,
        "images": [{"url": f"{civitai.cdn_url}/images/{version.id}.png", "type": "image", "nsfwLevel": 1,
                    "width": 1, "height": 1}],
    }


async def _model(request: web.Request) -> web.Response:
    civitai: FakeCivitai = request.app[_CIVITAI]
    model_id = int(request.match_info["id"])
    versions = sorted((v for v in civitai.versions.values() if v.model_id == model_id), key=lambda v: -v.id)
    if not versions:
        return web.json_response({"error": "No model with id " + str(model_id)}, status=404)
    return web.json_response({
        "id": model_id, "name": "Test model", "type": versions[0].model_type, "nsfw": False,
        "allowNoCredit": True, "allowCommercialUse": ["Image", "RentCivit"], "allowDerivatives": True,
        "allowDifferentLicense": True, "modelVersions": [{"id": v.id, "name": "v1.0"} for v in versions],
    })


async def _download(request: web.Request) -> web.Response:
    civitai: FakeCivitai = request.app[_CIVITAI]
    version = civitai.versions.get(int(request.match_info["id"]))
    if any(b in request.headers.get("User-Agent", "").lower() for b in _BROWSERS):
        return web.Response(status=200, text="<html>Log in to Civitai</html>", content_type="text/html")
    if version is None:
        return web.json_response({"error": "File not found"}, status=404)
    token = _token(request)
    if version.access == "login" and token not in civitai.tokens:
        return web.json_response({"error": "Unauthorized", "message": "The creator of this asset requires you to "
                                  "be logged in to download it"}, status=401)
    if version.access == "early_access" and token not in version.buyers:
        return web.json_response({"error": "Early Access", "deadline": "2030-01-01T00:00:00.000Z",
                                  "message": "This asset is in Early Access. You can use Buzz access it now!"},
                                 status=403)
    path = f"/files/{version.id}/{version.name}"
    expires = str(int(time.time()) + 3600)
    location = f"{civitai.cdn_url}{path}?Expires={expires}&Signature={civitai.signature(path, expires)}"
    return web.Response(status=307, headers={"Location": location, "Cache-Control": "no-store, max-age=0"})


async def _file(request: web.Request) -> web.StreamResponse:
    civitai: FakeCivitai = request.app[_CIVITAI]
    path = request.path
    expires = request.query.get("Expires", "")
    if not hmac.compare_digest(request.query.get("Signature", ""), civitai.signature(path, expires)):
        return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
    version = civitai.versions.get(int(request.match_info["id"]))
    if version is None or version.name != request.match_info["name"]:
        return web.Response(status=404)
    data, size = version.data, len(version.data)
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{version.sha256}"',
               "Content-Disposition": f'attachment; filename="{version.name}"',
               "Content-Type": "application/octet-stream"}
    start, end, status = 0, size, 200
    match = _RANGE.fullmatch(request.headers.get("Range", "").strip())
    if match and match.group() != "bytes=-":
        first, last = match.groups()
        start = int(first) if first else max(size - int(last), 0)
        end = min(int(last) + 1, size) if first and last else size
        if start >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return web.Response(status=status, body=data[start:end], headers=headers)


@web.middleware
async def _record(request: web.Request, handler):
    civitai: FakeCivitai = request.app[_CIVITAI]
    civitai.requests.append(RecordedRequest(request.method, request.host, request.rel_url.raw_path,
                                            request.headers.copy()))
    return await handler(request)


def make_app(civitai: FakeCivitai) -> web.Application:
    """The aiohttp application serving ``civitai`` (API, downloads and CDN alike)."""
    app = web.Application(middlewares=[_record])
    app[_CIVITAI] = civitai
    app.router.add_get(r"/api/v1/model-versions/{id:\d+}", _version)
    app.router.add_get(r"/api/v1/models/{id:\d+}", _model)
    app.router.add_get(r"/api/v1/model-versions/by-hash/{hash:[0-9A-Fa-f]{64}}", _by_hash)
    app.router.add_get(r"/images/{id:\d+}.png", _image)
    app.router.add_get(r"/api/download/models/{id:\d+}", _download)
    app.router.add_get(r"/files/{id:\d+}/{name}", _file)
    return app


@contextmanager
def running_civitai(civitai: FakeCivitai) -> Iterator[str]:
    """Serve ``civitai`` from a background thread; yields its base url. The CDN is the same app on
    another port (so another origin), at ``civitai.cdn_url``."""
    sock, cdn_sock = listen("127.0.0.1"), listen("127.0.0.1")
    civitai.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    civitai.cdn_url = f"http://127.0.0.1:{cdn_sock.getsockname()[1]}"
    with serving_on(make_app(civitai), [sock, cdn_sock], "fake-civitai"):
        yield civitai.url
