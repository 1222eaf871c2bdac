"""Where a file's bytes come from: its URL, what it should hash to, and which token it may carry.

Hugging Face files are resolved with huggingface_hub (URL, metadata, token, endpoint, and its
precise errors: gated < repository not found; entry and revision not found), in a thread. Plain
URLs (Civitai included) are resolved with a HEAD request (a refusal is fetched again with GET, to
read why: Civitai says "Early Access" in a JSON body). A token is attached only to requests for
the host it belongs to: the HF token to the Hub's host, the Civitai token to civitai.com (or
CIVITAI_ENDPOINT's host); never to a CDN the request is redirected to.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import email.utils
import errno
import importlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from yarl import URL

from ...errors import (
    AccessRefused,
    DashboardError,
    EarlyAccess,
    GatedModel,
    HttpFailure,
    InsufficientStorage,
    Offline,
    RemoteNotFound,
    RepositoryNotFound,
    RevisionNotFound,
    TokenRefused,
    TooManyRedirects,
    WriteFailure,
)
from ...threads import LOOP_DEFAULT, Threads

CIVITAI_HOSTS = ("civitai.com",)
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


def _network_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub's HTTP client raises when the network, not the code, failed."""
    errors: list[type[BaseException]] = [OSError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                         ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


NETWORK_ERRORS = _network_errors()


def unreachable(url: str, endpoint_hint: str | None = None) -> str:
    """The message for a host that cannot be reached, naming the setting that points at it."""
    hint = f"check the network or {endpoint_hint}" if endpoint_hint else "check the network"
    return f"cannot reach {urlparse(url).netloc or url}: {hint}"


class RetryableError(Exception):
    """A failure worth another try (connection lost, timeout, 408/429/5xx)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Resolved:
    """Everything needed to fetch and verify one file."""

    url: str
    size: int | None
    etag: str | None
    commit: str | None
    sha256: str | None
    git_sha1: str | None
    filename: str | None = None  # from the answer's Content-Disposition, if any


@dataclass(frozen=True)
class Tokens:
    """Credentials and the hosts they may be sent to."""

    hf_token: str | None = None
    hf_endpoint: str | None = None
    civitai_token: str | None = None
    civitai_endpoint: str | None = None

    def is_civitai(self, url: str) -> bool:
        """Whether `url` is Civitai's (civitai.com over https, or CIVITAI_ENDPOINT's scheme and host)."""
        parsed = urlparse(url)
        if self.civitai_endpoint:
            endpoint = urlparse(self.civitai_endpoint)
            if (parsed.scheme, parsed.netloc) == (endpoint.scheme, endpoint.netloc):
                return True
        host = parsed.hostname or ""
        return parsed.scheme == "https" and any(host == h or host.endswith("." + h) for h in CIVITAI_HOSTS)

    def headers_for(self, url: str) -> dict[str, str]:
        """The Authorization header for a request to `url`, if a token belongs to its host."""
        parsed = urlparse(url)
        hub = urlparse(self.hf_endpoint or DEFAULT_HF_ENDPOINT)
        if self.hf_token and (parsed.scheme, parsed.netloc) == (hub.scheme, hub.netloc):
            return {"Authorization": f"Bearer {self.hf_token}"}
        if self.civitai_token and self.is_civitai(url):
            return {"Authorization": f"Bearer {self.civitai_token}"}
        return {}


def as_retryable(exc: BaseException) -> RetryableError:
    """A connection error of the HTTP client (or a RetryableError) as the RetryableError to retry."""
    if isinstance(exc, RetryableError):
        return exc
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, no route, name resolution
        return RetryableError(unreachable(f"//{exc.host}:{exc.port}"))
    return RetryableError(f"connection lost: {exc.__class__.__name__}")


def write_failure(error: BaseException | None, path: Path) -> DashboardError:
    """The error for a `.part` that could not be written: a full disk is INSUFFICIENT_STORAGE."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return InsufficientStorage("The disk filled up while downloading", {"file": path.name})
    return WriteFailure(f"Could not write {path.name}: {error}")


async def resolve(spec: dict[str, Any], tokens: Tokens, session: aiohttp.ClientSession,
                  threads: Threads = LOOP_DEFAULT) -> Resolved:
    """Find the URL, size and expected hashes of a file described by a preset file `spec`
    (huggingface_hub's calls run in `threads`).

    Raises DownloadFailed for what retrying cannot fix, RetryableError otherwise.
    """
    if spec.get("repo"):
        resolved = await _resolve_hf(spec, tokens, threads)
    else:
        resolved = await _resolve_url(spec["url"], tokens, session)
    if spec.get("sha256"):
        resolved = Resolved(resolved.url, resolved.size, resolved.etag, resolved.commit, spec["sha256"], None)
    return resolved


async def _resolve_hf(spec: dict[str, Any], tokens: Tokens, threads: Threads) -> Resolved:
    repo, file, revision = spec["repo"], spec["repo_file"], spec.get("revision") or "main"
    url = hf_hub_url(repo, file, revision=revision, endpoint=tokens.hf_endpoint)
    where = {"repo": repo, "file": file, "revision": revision}
    try:
        meta = await threads.run(lambda: get_hf_file_metadata(
            url, token=tokens.hf_token or False, timeout=20, endpoint=tokens.hf_endpoint))
    except GatedRepoError:
        details = {"token": "HF_TOKEN", "model_page": f"{tokens.hf_endpoint or DEFAULT_HF_ENDPOINT}/{repo}", **where}
        if tokens.hf_token:
            raise TokenRefused(f"Hugging Face refused HF_TOKEN for {repo}: the token is not valid, or its account has "
                               f"not accepted the licence on the model page", details) from None
        raise GatedModel(f"{repo} is gated: accept its licence on the model page and set HF_TOKEN", details) from None
    except RevisionNotFoundError:
        raise RevisionNotFound(f"Revision {revision!r} of {repo} does not exist", where) from None
    except EntryNotFoundError:
        raise RemoteNotFound(f"{file} does not exist in {repo} at {revision}", where) from None
    except RepositoryNotFoundError:
        access = "HF_TOKEN has no access to it" if tokens.hf_token else "set HF_TOKEN if you have access"
        raise RepositoryNotFound(f"Repository {repo} does not exist, or it is private: {access}",
                                 {"token": "HF_TOKEN", **where}) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            refused = "refused HF_TOKEN for" if tokens.hf_token else "refused"
            kind = TokenRefused if tokens.hf_token else AccessRefused
            raise kind(f"Hugging Face {refused} {repo}/{file} ({status}): check HF_TOKEN",
                       {"token": "HF_TOKEN", **where}) from None
        if status is not None and status < 500 and status not in (408, 429):
            raise HttpFailure(f"Hugging Face answered {status} for {repo}/{file}",
                              {"status": status, **where}) from None
        raise RetryableError(f"Hugging Face answered {status} for {repo}/{file}") from None
    except OfflineModeIsEnabled:
        raise Offline(f"HF_HUB_OFFLINE is set: {repo}/{file} cannot be downloaded", where) from None
    except NETWORK_ERRORS:  # connection refused, name resolution, timeouts: worth another try
        raise RetryableError(unreachable(url, "HF_ENDPOINT")) from None
    etag = (meta.etag or "").lower() or None
    return Resolved(url=url, size=meta.size, etag=meta.etag, commit=meta.commit_hash,
                    sha256=etag if etag and _SHA256.match(etag) else None,
                    git_sha1=etag if etag and _SHA1.match(etag) else None)


async def _resolve_url(url: str, tokens: Tokens, session: aiohttp.ClientSession) -> Resolved:
    try:
        async with await request(session, "HEAD", url, tokens) as response:
            if response.status in (401, 403):
                raise await _refusal(session, url, tokens, response.status)
            if response.status == 404:
                raise RemoteNotFound(f"{url} does not exist", {"url": url})
            if response.status >= 400:  # some servers refuse HEAD: the GET will tell
                return Resolved(url, None, None, None, None, None)
            size = response.headers.get("Content-Length")
            return Resolved(url, int(size) if size and size.isdigit() and int(size) > 0 else None,
                            response.headers.get("ETag"), None, None, None,
                            disposition_filename(response.headers.get("Content-Disposition")))
    except aiohttp.ClientConnectorError:  # refused, no route, name resolution
        raise RetryableError(unreachable(url)) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise RetryableError(f"{unreachable(url)} ({exc.__class__.__name__})") from None


async def _refusal(session: aiohttp.ClientSession, url: str, tokens: Tokens, status: int) -> DashboardError:
    """The error for a 401/403 from `url`: Civitai's JSON body (read with a GET) tells early access
    from a login or a token it refused."""
    civitai = tokens.is_civitai(url)
    details: dict[str, Any] = {"url": url, "status": status, "token": "CIVITAI_TOKEN" if civitai else None}
    if not civitai:
        return AccessRefused(f"{url} refused the download ({status})", details)
    body: dict[str, Any] = {}
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        async with await request(session, "GET", url, tokens) as response:
            if response.status in (401, 403) and response.content_type == "application/json":
                answer = json.loads(await response.content.read(65536))
                body = answer if isinstance(answer, dict) else {}
    said = str(body.get("message") or body.get("error") or "").strip()
    if said:
        details["message"] = said
    if body.get("error") == "Early Access":
        if body.get("deadline"):
            details["deadline"] = body["deadline"]
        return EarlyAccess(f"Civitai: this file is in early access{': ' + said if said else ''}", details)
    if tokens.civitai_token:
        return TokenRefused(f"Civitai refused CIVITAI_TOKEN ({status}){': ' + said if said else ''}", details)
    return AccessRefused(f"Civitai refused the download ({status}): set CIVITAI_TOKEN"
                         f"{'; ' + said if said else ''}", details)


def disposition_filename(value: str | None) -> str | None:
    """The file name a Content-Disposition header gives (`filename*=UTF-8''...` first), if any."""
    if not value:
        return None
    message = email.message.Message()
    message["Content-Disposition"] = value
    name = message.get_filename()
    return name.strip() or None if name else None


async def request(session: aiohttp.ClientSession, method: str, url: str, tokens: Tokens,
                  headers: dict[str, str] | None = None, max_redirects: int = 5, **options: Any
                  ) -> aiohttp.ClientResponse:
    """Send a request, following redirects by hand so each hop gets only its own host's token.
    `options` go to aiohttp (e.g. `read_bufsize`)."""
    for _ in range(max_redirects + 1):
        response = await session.request(method, url, headers={**(headers or {}), **tokens.headers_for(url)},
                                         allow_redirects=False, **options)
        if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
            url = str(response.url.join(URL(response.headers["Location"])))
            response.release()
            continue
        return response
    raise TooManyRedirects(f"Too many redirects for {url}", {"url": url})


def check_status(response: aiohttp.ClientResponse, resolved: Resolved) -> None:
    """Raise for an answer that carries no bytes of the file: RetryableError for 408/429/5xx,
    DOWNLOAD_FAILED for what retrying cannot fix."""
    if response.status in (200, 206):
        return
    if response.status in RETRY_STATUSES:
        raise RetryableError(f"server answered {response.status}", retry_after(response.headers.get("Retry-After")))
    if response.status in (401, 403):
        raise AccessRefused(f"{resolved.url} refused the download ({response.status}); check your token",
                            {"url": resolved.url, "status": response.status})
    if response.status == 404:
        raise RemoteNotFound(f"{resolved.url} does not exist", {"url": resolved.url})
    raise HttpFailure(f"{resolved.url} answered {response.status}", {"url": resolved.url, "status": response.status})


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
