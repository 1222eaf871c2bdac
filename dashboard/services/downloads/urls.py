"""Downloading one model from a URL: which URLs are accepted, and what each becomes.

Accepted, and nothing else (so an open dashboard cannot be made to fetch from anywhere):

- Hugging Face model files, `<hub>/<ns>/<name>/resolve|blob/<revision>/<path>` on huggingface.co
  (or hf.co) over https, or on HF_ENDPOINT's scheme and host; resolved like a preset's file.
- Civitai: `/api/download/models/<version>`, `/api/v1/model-versions/<version>`,
  `/model-versions/<version>`, model pages `/models/<model>[/<slug>]?modelVersionId=<version>` on
  civitai.com over https or on CIVITAI_ENDPOINT, and AIR URNs
  `urn:air:<ecosystem>:<type>:civitai:<model>@<version>`; resolved through Civitai's public API
  (`/api/v1/model-versions/<version>`: the file's name, size and SHA256).
- Any other https URL whose host (or host:port) is in DASHBOARD_DOWNLOAD_HOSTS. Plain http is
  accepted only on a configured endpoint (HF_ENDPOINT, CIVITAI_ENDPOINT) or an origin listed with
  its scheme (`http://host[:port]`) in DASHBOARD_DOWNLOAD_HOSTS.

A refusal is INVALID_REQUEST naming the field (`url`, `filename`, `subfolder`); nothing here
writes anything. `license_of` says under which licence a located file is published, as far as its
source tells (the Hub's model card, Civitai's model permissions).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlparse

import aiohttp
from huggingface_hub import HfApi

from ...comfy.folders import MODEL_EXTENSIONS
from ...errors import HttpFailure, NetworkFailure, RemoteNotFound, invalid
from ...threads import Threads
from .sources import DEFAULT_HF_ENDPOINT, Resolved, RetryableError, Tokens, request, resolve, unreachable

CIVITAI = "https://civitai.com"
HF_HOSTS = ("huggingface.co", "hf.co")
_AIR = re.compile(r"^(?:urn:)?air:(?:(?P<eco>[\w.-]+):)?(?:(?P<type>[\w.-]+):)?(?P<source>[\w.-]+):"
                  r"(?P<id>[^@+.:]+)(?:@(?P<version>[^+.:]+))?(?:\+(?P<file>[^.:]+))?(?:\.(?P<format>\w+))?$",
                  re.IGNORECASE)
_DIGITS = re.compile(r"^\d+$")
_REPO_PART = re.compile(r"^[\w.-]+$")


@dataclass(frozen=True)
class UrlSource:
    """What a URL stands for: the file task's spec, a file name if the source gives one, and what
    the record beside the file will say about where it came from."""

    spec: dict[str, Any]
    filename: str | None
    source: dict[str, Any]


def parse(url: str, tokens: Tokens, allowed_hosts: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """(kind, parts) for an accepted URL (`huggingface`, `civitai` or `url`); INVALID_REQUEST otherwise."""
    text = url.strip()
    air = _AIR.match(text)
    if air is not None:
        if air["source"].lower() != "civitai":
            raise invalid(f"Only Civitai AIR URNs can be downloaded, not {air['source']!r}", field="url", value=url)
        if not air["version"] or not _DIGITS.match(air["version"]) or not _DIGITS.match(air["id"]):
            raise invalid("An AIR URN must name the model version: "
                          "urn:air:<ecosystem>:<type>:civitai:<model>@<version>", field="url", value=url)
        return "civitai", {"version_id": int(air["version"]), "model_id": int(air["id"]), "download_url": None}
    parsed = urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise invalid("url must be an http(s) URL or an AIR URN", field="url", value=url)
    origin = (parsed.scheme, parsed.netloc.lower())
    hub = urlparse(tokens.hf_endpoint or DEFAULT_HF_ENDPOINT)
    if origin == (hub.scheme, hub.netloc.lower()) or (parsed.scheme == "https" and parsed.hostname in HF_HOSTS):
        return "huggingface", _hf_parts(parsed, url)
    if tokens.is_civitai(text):
        return "civitai", _civitai_parts(parsed, url)
    host, netloc = parsed.hostname.lower(), parsed.netloc.lower()
    if f"{parsed.scheme}://{netloc}" in allowed_hosts:
        return "url", {"url": text}
    if parsed.scheme != "https":
        raise invalid("Only https URLs can be downloaded (http only from HF_ENDPOINT, CIVITAI_ENDPOINT or an "
                      "origin listed as http://host in DASHBOARD_DOWNLOAD_HOSTS)", field="url", value=url)
    if host not in allowed_hosts and netloc not in allowed_hosts:
        raise invalid(f"{host} is not a host downloads may come from: Hugging Face, Civitai, or a host listed in "
                      "DASHBOARD_DOWNLOAD_HOSTS", field="url", value=url, host=host)
    return "url", {"url": text}


def _hf_parts(parsed, url: str) -> dict[str, Any]:
    parts = [p for p in parsed.path.split("/") if p]
    if parts and parts[0] in ("datasets", "spaces", "kernels"):
        raise invalid(f"Only files of Hugging Face model repositories can be downloaded, not {parts[0]}",
                      field="url", value=url)
    if len(parts) < 5 or parts[2] not in ("resolve", "blob") or not all(_REPO_PART.match(p) for p in parts[:2]):
        raise invalid("A Hugging Face URL must name a file: <hub>/<owner>/<repo>/resolve/<revision>/<path>",
                      field="url", value=url)
    rest = parts[3:]
    revision = unquote(rest[0])
    if revision == "refs" and len(rest) > 3 and rest[1] in ("pr", "convert"):  # refs/pr/N written unencoded
        revision, rest = "/".join(rest[:3]), ["", *rest[3:]]
    path = "/".join(unquote(p) for p in rest[1:])
    if not path or any(p in (".", "..") for p in path.split("/")):
        raise invalid("A Hugging Face URL must name a file in the repository", field="url", value=url)
    return {"repo": f"{parts[0]}/{parts[1]}", "repo_file": path, "revision": revision}


def _civitai_parts(parsed, url: str) -> dict[str, Any]:
    parts = [p for p in parsed.path.split("/") if p]
    query = parse_qs(parsed.query)
    version = model = None
    download_url = None
    if parts[:3] == ["api", "download", "models"] and len(parts) == 4:
        version = parts[3]
        download_url = url.strip() if parsed.query else None
    elif (parts[:3] == ["api", "v1", "model-versions"] and len(parts) == 4) or (
            parts[:1] == ["model-versions"] and len(parts) == 2):
        version = parts[-1]
    elif parts[:1] == ["models"] and len(parts) in (2, 3):
        model = parts[1]
        version = (query.get("modelVersionId") or [None])[0]
        if version is None:
            raise invalid("A Civitai model page must name its version: add ?modelVersionId=<id> (the version "
                          "shown on the page)", field="url", value=url)
    if version is None or not _DIGITS.match(version) or (model is not None and not _DIGITS.match(model)):
        raise invalid("Not a Civitai model URL: use /api/download/models/<version>, "
                      "/models/<model>?modelVersionId=<version> or an AIR URN", field="url", value=url)
    return {"version_id": int(version), "model_id": int(model) if model else None, "download_url": download_url}


async def civitai_source(parts: dict[str, Any], tokens: Tokens, session: aiohttp.ClientSession,
                         url: str) -> UrlSource:
    """The file a Civitai model version stands for, from Civitai's public API."""
    base = tokens.civitai_endpoint or CIVITAI
    version_id = parts["version_id"]
    api = f"{base}/api/v1/model-versions/{version_id}"
    where = {"url": url, "version_id": version_id}
    try:
        async with await request(session, "GET", api, tokens, {"Accept": "application/json"}) as response:
            if response.status == 404:
                raise RemoteNotFound(f"Civitai has no model version {version_id} (or it is not published)", where)
            if response.status >= 400:
                raise HttpFailure(f"Civitai answered {response.status} for model version {version_id}",
                                  {**where, "status": response.status})
            info = await response.json(content_type=None)
    except aiohttp.ClientConnectorError:
        raise NetworkFailure(unreachable(api, "CIVITAI_ENDPOINT"), where) from None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        raise NetworkFailure(f"{unreachable(api, 'CIVITAI_ENDPOINT')} ({exc.__class__.__name__})", where) from None
    if not isinstance(info, dict):
        raise HttpFailure(f"Civitai's answer for model version {version_id} is not an object", where)
    files = [f for f in info.get("files") or [] if isinstance(f, dict)]
    chosen = _civitai_file(files, parts["download_url"])
    download = parts["download_url"] or (chosen or {}).get("downloadUrl") or info.get("downloadUrl") \
        or f"{base}/api/download/models/{version_id}"
    download = _on_endpoint(download, tokens.civitai_endpoint)
    sha256 = ((chosen or {}).get("hashes") or {}).get("SHA256")
    size_kb = (chosen or {}).get("sizeKB")
    spec = {"url": download, "sha256": sha256.lower() if isinstance(sha256, str) and sha256 else None,
            "size": int(size_kb * 1024) if isinstance(size_kb, (int, float)) and size_kb > 0 else 0}
    model_id = info.get("modelId") or parts["model_id"]
    source = {"kind": "civitai", "url": url, "model_id": model_id, "version_id": version_id,
              "download_url": download}
    name = (chosen or {}).get("name")
    return UrlSource(spec, name if isinstance(name, str) else None, source)


def _civitai_file(files: list[dict[str, Any]], download_url: str | None) -> dict[str, Any] | None:
    """The file a download URL asks for (its `fileId`, or its query matching a file's downloadUrl),
    else the primary one."""
    if download_url is not None:
        query = parse_qs(urlparse(download_url).query)
        if "fileId" in query:
            return next((f for f in files if str(f.get("id")) == query["fileId"][0]), None)
        wanted = urlencode(sorted(query.items()), doseq=True)
        for f in files:
            theirs = parse_qs(urlparse(str(f.get("downloadUrl", ""))).query)
            if urlencode(sorted(theirs.items()), doseq=True) == wanted:
                return f
        return None  # not a file the API describes: its name and hash come from the download
    return next((f for f in files if f.get("primary") is True), files[0] if files else None)


def _on_endpoint(url: str, endpoint: str | None) -> str:
    """A civitai.com URL moved onto CIVITAI_ENDPOINT, when one is set."""
    if not endpoint:
        return url
    parsed = urlparse(url)
    if parsed.hostname in ("civitai.com", "www.civitai.com"):
        base = urlparse(endpoint)
        return parsed._replace(scheme=base.scheme, netloc=base.netloc).geturl()
    return url


async def locate(url: str, filename: str | None, sha256: str | None, tokens: Tokens,
                 session: aiohttp.ClientSession, threads: Threads, allowed_hosts: tuple[str, ...]
                 ) -> tuple[UrlSource, dict[str, Any], Resolved, str]:
    """Check `url` and ask its source once, without retries: (source, the file task's spec, what the
    source answered, the file name: `filename` if given, else the source's). Raises INVALID_REQUEST
    naming `url` or `filename`, or the DownloadFailed the source answers with."""
    kind, parts = parse(url, tokens, allowed_hosts)
    if kind == "civitai":
        source = await civitai_source(parts, tokens, session, url)
    elif kind == "huggingface":
        source = hf_source(parts, url)
    else:
        source = plain_source(url)
    spec = {**source.spec, **({"sha256": sha256.lower()} if sha256 else {})}
    try:
        resolved = await resolve(spec, tokens, session, threads)
    except RetryableError as exc:
        raise NetworkFailure(f"Could not reach the source: {exc}", {"url": url, "error": str(exc)}) from None
    if filename is None:
        found = resolved.filename if kind == "url" and resolved.filename else source.filename or resolved.filename
        filename = check_filename(found or "", given=False)
    return source, spec, resolved, filename


def hf_source(parts: dict[str, Any], url: str) -> UrlSource:
    """The spec of a Hugging Face file (resolved like a preset's)."""
    spec = {"repo": parts["repo"], "repo_file": parts["repo_file"], "revision": parts["revision"], "size": 0}
    source = {"kind": "huggingface", "url": url, "repo": parts["repo"], "repo_file": parts["repo_file"],
              "revision": parts["revision"]}
    return UrlSource(spec, parts["repo_file"].rsplit("/", 1)[-1], source)


def plain_source(url: str) -> UrlSource:
    """The spec of a file on an allowed host."""
    name = unquote(urlparse(url).path.rsplit("/", 1)[-1]) or None
    return UrlSource({"url": url, "size": 0}, name, {"kind": "url", "url": url})


def check_filename(name: str, given: bool) -> str:
    """`name` if it is a plain file name with a model extension; INVALID_REQUEST (field filename) otherwise."""
    name = name.strip()
    whose = "" if given else f" (the source names the file {name!r}: give a filename)"
    if not name or "/" in name or "\\" in name or "\0" in name or name in (".", "..") or name.startswith("."):
        raise invalid(f"filename must be a plain file name, without folders{whose}", field="filename", value=name)
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in MODEL_EXTENSIONS:
        raise invalid(f"filename must end in a model extension ({', '.join(sorted(MODEL_EXTENSIONS))}){whose}",
                      field="filename", value=name)
    return name


def check_subfolder(subfolder: str | None) -> str:
    """The subfolder as `a/b` (empty for none); INVALID_REQUEST (field subfolder) if it could leave its folder."""
    if subfolder is None:
        return ""
    text = subfolder.strip().strip("/") if not subfolder.startswith("/") else subfolder
    segments = text.split("/") if text else []
    if subfolder.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", subfolder) or "\\" in subfolder \
            or "\0" in subfolder or any(s in ("", ".", "..") for s in segments):
        raise invalid("subfolder must be a relative path inside the model folder, without '..'",
                      field="subfolder", value=subfolder)
    return "/".join(segments)


async def license_of(source: dict[str, Any], tokens: Tokens, session: aiohttp.ClientSession,
                     threads: Threads) -> dict[str, Any] | None:
    """The licence a located file is published under: `{name, url, ...}`, or None when its source
    does not say (a plain URL) or cannot be asked; never an error (it only informs the user)."""
    if source.get("kind") == "huggingface":
        hub = tokens.hf_endpoint or DEFAULT_HF_ENDPOINT
        try:
            info = await threads.run(lambda: HfApi(endpoint=hub, token=tokens.hf_token or False).model_info(
                source["repo"], revision=source.get("revision"), timeout=10))
        except Exception:  # the Hub's answer is informative only
            return None
        card = info.card_data.to_dict() if info.card_data is not None else {}
        name = card.get("license") or next((t.split(":", 1)[1] for t in info.tags or [] if t.startswith("license:")),
                                           None)
        if name is None:
            return None
        return {"name": card.get("license_name") or name, "url": card.get("license_link") or f"{hub}/{source['repo']}"}
    if source.get("kind") == "civitai" and source.get("model_id"):
        base = tokens.civitai_endpoint or CIVITAI
        try:
            async with await request(session, "GET", f"{base}/api/v1/models/{source['model_id']}", tokens,
                                     {"Accept": "application/json"}, timeout=aiohttp.ClientTimeout(total=10)
                                     ) as response:
                info = await response.json(content_type=None) if response.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None
        if not isinstance(info, dict):
            return None
        commercial = info.get("allowCommercialUse")
        commercial = commercial if isinstance(commercial, list) else [commercial] if commercial else []
        return {"name": "Civitai model licence", "url": f"{CIVITAI}/models/{source['model_id']}",
                "commercial_use": [str(c) for c in commercial if c and c != "None"],
                "derivatives": info.get("allowDerivatives") is not False,
                "credit_required": info.get("allowNoCredit") is False}
    return None
